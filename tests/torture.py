"""Torture campaign: random structural damage to a data directory, then
every recovery mode and every CLI subcommand against it.

    python tests/torture.py --seconds 600 --seed 7      (or: make torture)

Each case copies a healthy data directory (several segments, snapshots,
entries with and without data), damages it in one to three random ways
(truncations, zeroed sectors, rewritten length words, bit flips, duplicated,
renamed, swapped or deleted segments, leftover temporaries, damaged or
missing ``.snap`` files) and then checks, for the library and the command:

* no crash: only ``raftwal.Error`` or ``OSError`` escape ``raftwal.open``
  (never a ``PanicException``, ``ValueError``, ``IndexError``, ...); the
  command exits 0, 1 or 2, prints no traceback and finishes within a bound;
* no silent loss: a strict open that succeeds gives exactly the original
  log (every index it serves matches, the same last index and HardState);
  any mode's log is a prefix of the original;
* nothing destroyed unreported: after a tolerate-tail or salvage open,
  every file whose bytes changed or that went away has a ``.broken`` copy
  holding its bytes (temporaries aside), and ``.recovery`` says it repaired;
* read-only is read-only: ``verify``, ``inspect`` and ``dump`` change no
  file name, mode or byte.

The totals are printed as one JSON line; the exit status is 1 when any
case failed (the failures are listed, with the seed that reproduces them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import raftwal
from raftwal import ConfState, Entry, HardState

SEGMENT_SIZE = 8 * 1024
SECTOR = 512
CLI_TIMEOUT = 60.0
MODES = ("strict", "tolerate-tail", "salvage")
READ_ONLY_COMMANDS = (
    ["verify"],
    ["verify", "--json"],
    ["inspect"],
    ["inspect", "--json"],
    ["dump"],
    ["dump", "--json"],
)
WRITING_COMMANDS = (
    ["repair"],
    ["repair", "--json"],
    ["repair", "--mode", "salvage"],
    ["repair", "--mode", "salvage", "--json"],
)
# Files a writer owns and may remove or rewrite without a copy.
TEMPORARY_SUFFIXES = (".tmp",)


# --- the healthy directory ------------------------------------------------------------


@dataclass
class Original:
    """What the healthy directory holds: term and data of every index saved
    (the newest write of each), its last index and HardState."""

    log: dict[int, tuple[int, bytes]]
    last_index: int
    hard_state: tuple[int, int, int]


def build(root: Path, rng: random.Random) -> Original:
    log: dict[int, tuple[int, bytes]] = {}
    with raftwal.open(
        root, segment_size=SEGMENT_SIZE, max_wals=0, max_snapshots=0, catch_up_entries=3
    ) as s:
        index, term = 0, 1
        for batch in range(60):
            if batch % 17 == 16:
                term += 1
            ents = []
            for _ in range(rng.randint(1, 4)):
                index += 1
                size = rng.choice([0, 0, 1, 7, 40, 200, 700])
                data = bytes(rng.getrandbits(8) for _ in range(size))
                e = (
                    Entry(term=term, index=index, data=data)
                    if size
                    else Entry(term=term, index=index)
                )
                ents.append(e)
                log[index] = (term, data)
            s.save(HardState(term=term, vote=1, commit=index), ents)
            if batch in (20, 45):
                s.create_snapshot(index - 2, ConfState(voters=[1, 2, 3]), b"state at %d" % index)
        hs = s.initial_state()[0]
        last = s.last_index()
    return Original(log, last, (hs.term, hs.vote, hs.commit))


# --- damage ------------------------------------------------------------------------


def _segments(d: Path) -> list[Path]:
    return sorted((d / "wal").glob("*.wal"))


def _snaps(d: Path) -> list[Path]:
    return sorted((d / "snap").glob("*.snap"))


def _log_end(p: Path) -> int:
    """Offset just past the last non-zero byte (the end of the log, roughly)."""
    b = p.read_bytes()
    return len(b.rstrip(b"\0"))


def _pick_file(d: Path, rng: random.Random) -> Path | None:
    files = _segments(d) + _snaps(d)
    return rng.choice(files) if files else None


def _rewrite(p: Path, fn: Callable[[bytearray], None]) -> None:
    b = bytearray(p.read_bytes())
    fn(b)
    p.write_bytes(bytes(b))


def d_truncate(d: Path, rng: random.Random) -> str:
    p = _pick_file(d, rng)
    if p is None:
        return "nothing to truncate"
    n = rng.randint(0, max(0, _log_end(p)))
    os.truncate(p, n)
    return f"truncate {p.name} at {n}"


def d_zero_sector(d: Path, rng: random.Random) -> str:
    p = _pick_file(d, rng)
    if p is None:
        return "nothing to zero"
    end = max(1, _log_end(p))
    off = rng.randrange(0, end) // SECTOR * SECTOR

    def zero(b: bytearray) -> None:
        b[off : off + SECTOR] = bytes(len(b[off : off + SECTOR]))

    _rewrite(p, zero)
    return f"zero sector {p.name}@{off}"


def d_length_word(d: Path, rng: random.Random) -> str:
    segs = _segments(d)
    if not segs:
        return "no segment"
    p = rng.choice(segs)
    end = max(8, _log_end(p))
    off = rng.randrange(0, end) // 8 * 8
    value = rng.choice([0, 1, 8, 1 << 20, 10 * 1024 * 1024, 1 << 40, rng.getrandbits(64)])

    def put(b: bytearray) -> None:
        if off + 8 <= len(b):
            b[off : off + 8] = value.to_bytes(8, "little")

    _rewrite(p, put)
    return f"length word {p.name}@{off}={value:#x}"


def d_flip_bits(d: Path, rng: random.Random) -> str:
    p = _pick_file(d, rng)
    if p is None:
        return "nothing to flip"
    end = max(1, _log_end(p))
    flips = [(rng.randrange(0, end), rng.randrange(8)) for _ in range(rng.randint(1, 3))]

    def flip(b: bytearray) -> None:
        for off, bit in flips:
            if off < len(b):
                b[off] ^= 1 << bit

    _rewrite(p, flip)
    return f"flip {p.name} {flips}"


def d_delete_segment(d: Path, rng: random.Random) -> str:
    segs = _segments(d)
    if not segs:
        return "no segment"
    p = rng.choice(segs)
    p.unlink()
    return f"delete {p.name}"


def d_duplicate_segment(d: Path, rng: random.Random) -> str:
    segs = _segments(d)
    if not segs:
        return "no segment"
    p = rng.choice(segs)
    seq, index = (int(x, 16) for x in p.stem.split("-"))
    dup = p.with_name(f"{seq + len(segs):016x}-{index:016x}.wal")
    shutil.copy2(p, dup)
    return f"duplicate {p.name} as {dup.name}"


def d_rename_segment(d: Path, rng: random.Random) -> str:
    segs = _segments(d)
    if not segs:
        return "no segment"
    p = rng.choice(segs)
    seq, index = (int(x, 16) for x in p.stem.split("-"))
    new = p.with_name(f"{seq:016x}-{(index + rng.choice([-1, 1, 5])) % (1 << 64):016x}.wal")
    if new.exists():
        return "rename collided"
    p.rename(new)
    return f"rename {p.name} to {new.name}"


def d_swap_segments(d: Path, rng: random.Random) -> str:
    segs = _segments(d)
    if len(segs) < 2:
        return "fewer than two segments"
    a, b = rng.sample(segs, 2)
    ab, bb = a.read_bytes(), b.read_bytes()
    a.write_bytes(bb)
    b.write_bytes(ab)
    return f"swap {a.name} {b.name}"


def d_leftover_tmp(d: Path, rng: random.Random) -> str:
    where = rng.choice(
        ["wal/0.tmp", "wal/1.tmp", "snap/db.tmp.1", "snap/0000000000000001.snap.tmp"]
    )
    p = d / where
    segs = _segments(d)
    content = rng.choice(
        [b"", bytes(4096), os.urandom(300), segs[0].read_bytes()[:700] if segs else b"x"]
    )
    p.write_bytes(content)
    return f"leftover {where} ({len(content)} bytes)"


def d_snap(d: Path, rng: random.Random) -> str:
    snaps = _snaps(d)
    if not snaps:
        return "no snapshot"
    p = rng.choice(snaps)
    how = rng.choice(["delete", "empty", "truncate", "garbage"])
    if how == "delete":
        p.unlink()
    elif how == "empty":
        p.write_bytes(b"")
    elif how == "truncate":
        os.truncate(p, rng.randrange(0, max(1, p.stat().st_size)))
    else:
        p.write_bytes(os.urandom(rng.randint(1, 200)))
    return f"snap {how} {p.name}"


# Damage a crash can leave too (a log cut at a record boundary, a last segment
# not yet renamed into place): a strict open may then serve a prefix.
LOSES_A_SUFFIX = {"d_truncate", "d_delete_segment", "d_rename_segment"}

DAMAGE = [
    d_truncate,
    d_zero_sector,
    d_length_word,
    d_flip_bits,
    d_delete_segment,
    d_duplicate_segment,
    d_rename_segment,
    d_swap_segments,
    d_leftover_tmp,
    d_snap,
]


# --- checks ------------------------------------------------------------------------


def tree(d: Path) -> dict[str, tuple[int, str]]:
    """Every file under d: (mode, sha256) by relative name."""
    out: dict[str, tuple[int, str]] = {}
    for p in sorted(d.rglob("*")):
        st = p.lstat()
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(d))] = (st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
        else:
            out[str(p.relative_to(d))] = (st.st_mode, "")
    return out


@dataclass
class Totals:
    cases: int = 0
    opens: int = 0
    commands: int = 0
    strict_ok: int = 0
    strict_refused: int = 0
    repaired: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, case: str, what: str) -> None:
        self.failures.append(f"{case}: {what}")


def check_served(s: raftwal.DurableStorage, orig: Original, strict: bool) -> str | None:
    """None if what `s` serves is the original log (`strict`) or a prefix of it."""
    last = s.last_index()
    first = s.first_index()
    if last > orig.last_index:
        return f"last index {last} beyond the original {orig.last_index}"
    if strict and last != orig.last_index:
        return f"strict open served up to {last}, the original holds {orig.last_index}"
    if strict:
        hs = s.initial_state()[0]
        if (hs.term, hs.vote, hs.commit) != orig.hard_state:
            return f"strict open: HardState {hs} != {orig.hard_state}"
    if first <= last:
        for e in s.entries(first, last + 1):
            want = orig.log.get(e.index)
            got = (e.term, e.data or b"")
            if want != got:
                return f"entry {e.index}: {got[0]}/{len(got[1])}B, original {want and want[0]}"
    return None


def check_nothing_destroyed(before: dict[str, bytes], d: Path) -> str | None:
    for name, data in before.items():
        if name.endswith(TEMPORARY_SUFFIXES) or ".tmp" in Path(name).name:
            continue
        p = d / name
        if p.is_file() and p.read_bytes() == data:
            continue
        # changed or gone: some .broken copy must hold the bytes it had
        copies = [c for c in d.rglob("*.broken*") if c.is_file() and c.read_bytes() == data]
        if not copies:
            return f"{name} changed or removed without a .broken copy"
    return None


def file_bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in d.rglob("*") if p.is_file()}


def run_open(case: str, base: Path, work: Path, orig: Original, exact: bool, t: Totals) -> None:
    for mode in MODES:
        d = work / f"open-{mode}"
        shutil.copytree(base, d)
        before = file_bytes(d)
        t.opens += 1
        try:
            s = raftwal.open(d, recovery=mode, segment_size=SEGMENT_SIZE, max_wals=0)
        except (raftwal.Error, OSError):
            if mode == "strict":
                t.strict_refused += 1
            else:
                bad = check_nothing_destroyed(before, d)
                if bad:
                    t.fail(case, f"{mode} open failed and {bad}")
            continue
        except BaseException as err:  # anything else is a defect
            t.fail(case, f"{mode} open raised {type(err).__name__}: {err}")
            continue
        try:
            bad = check_served(s, orig, strict=(mode == "strict" and exact))
            if bad:
                t.fail(case, f"{mode}: {bad}")
            if mode == "strict":
                t.strict_ok += 1
            if s.recovery.repaired:
                t.repaired += 1
        finally:
            s.close()
        bad = check_nothing_destroyed(before, d)
        if bad:
            t.fail(case, f"{mode}: {bad}")
        elif mode == "strict":
            copies = [n for n in file_bytes(d).keys() - before.keys() if ".broken" in n]
            if copies:
                t.fail(case, f"strict open repaired something: {sorted(copies)}")


def run_cli(argv: list[str], d: Path) -> tuple[int | None, str]:
    try:
        r = subprocess.run(
            [sys.executable, "-m", "raftwal", *argv, str(d)],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return r.returncode, r.stdout + r.stderr


def run_commands(
    case: str, base: Path, work: Path, rng: random.Random, per_case: int, t: Totals
) -> None:
    commands = [list(c) for c in READ_ONLY_COMMANDS + WRITING_COMMANDS]
    for argv in rng.sample(commands, min(per_case, len(commands))):
        d = work / ("cli-" + "-".join(a.strip("-") for a in argv))
        shutil.copytree(base, d)
        before = tree(d)
        before_bytes = file_bytes(d)
        t.commands += 1
        code, out = run_cli(argv, d)
        what = " ".join(argv)
        if code is None:
            t.fail(case, f"`{what}` hung")
            continue
        if code not in (0, 1, 2):
            t.fail(case, f"`{what}` exited {code}")
        if "Traceback (most recent call last)" in out:
            t.fail(case, f"`{what}` printed a traceback: {out[-600:]}")
        if argv[0] in ("verify", "inspect", "dump"):
            if tree(d) != before:
                t.fail(case, f"read-only `{what}` changed the directory")
        else:
            bad = check_nothing_destroyed(before_bytes, d)
            if bad:
                t.fail(case, f"`{what}`: {bad}")


# --- driver ------------------------------------------------------------------------


def campaign(seconds: float, seed: int, per_case: int, max_cases: int | None) -> Totals:
    t = Totals()
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="raftwal-torture-") as tmp:
        healthy = Path(tmp) / "healthy"
        orig = build(healthy, random.Random(seed))
        n = 0
        while time.monotonic() < deadline and (max_cases is None or n < max_cases):
            n += 1
            case_seed = rng.getrandbits(32)
            crng = random.Random(case_seed)
            work = Path(tmp) / f"case{n}"
            base = work / "damaged"
            shutil.copytree(healthy, base)
            picked = [crng.choice(DAMAGE) for _ in range(crng.randint(1, 3))]
            done = [f(base, crng) for f in picked]
            exact = not any(f.__name__ in LOSES_A_SUFFIX for f in picked)
            case = f"seed {seed} case {n} (case seed {case_seed}): " + "; ".join(done)
            t.cases += 1
            run_open(case, base, work, orig, exact, t)
            run_commands(case, base, work, crng, per_case, t)
            shutil.rmtree(work)
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="time budget")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--commands-per-case", type=int, default=3)
    ap.add_argument("--max-cases", type=int)
    args = ap.parse_args(argv)
    t = campaign(args.seconds, args.seed, args.commands_per_case, args.max_cases)
    summary: dict[str, Any] = {
        "seed": args.seed,
        "cases": t.cases,
        "opens": t.opens,
        "commands": t.commands,
        "strict_ok": t.strict_ok,
        "strict_refused": t.strict_refused,
        "repaired": t.repaired,
        "failures": len(t.failures),
    }
    for f in t.failures:
        print("FAIL", f, file=sys.stderr)
    print(json.dumps(summary))
    return 1 if t.failures else 0


if __name__ == "__main__":
    sys.exit(main())
