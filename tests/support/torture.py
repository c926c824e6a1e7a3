"""A torture campaign for raftwal's recovery and tools.

    python tests/support/torture.py --seconds 60 --seed 1 [--keep DIR]

A data directory is written once (several segments, snapshots, terms that
change). Then, until the budget in seconds is spent, a copy of it gets one
to three random structural damages (truncations, zeroed sectors, rewritten
length words, flipped bits, duplicated / renamed / swapped / deleted
segments, leftover ``.tmp`` files, ``.snap`` damage, ``db.tmp`` leftovers,
FIFOs named like a segment or a snapshot), and each damaged directory goes
through:

* every CLI subcommand, ``verify``, ``inspect``, ``dump``, ``repair`` and
  ``repair --mode salvage``, each with and without ``--json``, as a user
  runs them (``python -m raftwal``; each on its own copy, with a timeout);
* ``raftwal.open`` in each recovery mode and with ``read_only=True``, and
  ``WAL.open_for_read(...).read_all()``.

What must hold (each breach is counted and the case kept for replay):

* no Python traceback in any output, no hang (timeout), exit codes in
  {0, 1, 2}, ``--json`` output that parses;
* ``verify``, ``inspect``, ``dump``, ``read_only=True`` and
  ``open_for_read`` change no name, mode or byte;
* no silent loss: whatever an open recovers is a prefix of what was
  written (entries equal to the originals, a HardState and a snapshot that
  were saved); a ``strict`` open that succeeds after damage it must detect
  (a flipped bit, a rewritten length word, a changed ``.snap``) returns
  exactly the original state; every file a recovery mode changed or removed
  has a ``.broken`` copy of its bytes (or, for ``db.tmp*``, is listed in
  ``.recovery.removed``).

Exit status 0 when nothing was breached, 1 otherwise; a JSON summary is
printed last.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dirtree import tree
from walfile import frames

import raftwal
from raftwal import WAL, ConfState, Entry, HardState
from raftwal.snap import snap_file_name

SEGMENT_SIZE = 2048
CLI_TIMEOUT = 60.0
COMMANDS = (
    ("verify",),
    ("inspect",),
    ("dump",),
    ("repair",),
    ("repair", "--mode", "salvage"),
)
READ_ONLY_COMMANDS = {"verify", "inspect", "dump"}
MODES = ("strict", "tolerate-tail", "salvage")


# --- the original -------------------------------------------------------------------------


def json_documents_ok(command: str, stdout: str) -> bool:
    """The command's contract for ``--json``: ``dump`` prints JSON Lines (no
    line when nothing matched), every other subcommand one document; each
    document carries ``schema_version``."""
    try:
        if command == "dump":
            docs = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        else:
            docs = [json.loads(stdout)]
    except ValueError:
        return False
    return all(isinstance(d, dict) and "schema_version" in d for d in docs)


class Original:
    """What was written: entries by index, every HardState and snapshot saved,
    and the state a strict open of the untouched directory recovers."""

    def __init__(self, d: Path, rng: random.Random) -> None:
        self.entries: dict[int, tuple[int, bytes]] = {}
        self.hard_states = {(0, 0, 0)}
        self.snapshots: set[bytes] = {raftwal.Snapshot().SerializeToString()}
        term = 1
        with raftwal.open(
            d, segment_size=SEGMENT_SIZE, max_wals=0, max_snapshots=0, catch_up_entries=5
        ) as s:
            for i in range(1, 121):
                if i % 37 == 0:
                    term += 1
                data = rng.randbytes(rng.choice((0, 1, 7, 30, 100, 300)))
                hs = HardState(term=term, vote=1, commit=i)
                s.save(hs, [Entry(term=term, index=i, data=data)])
                self.entries[i] = (term, data)
                self.hard_states.add((term, 1, i))
                if i in (30, 70, 100):
                    snap = s.create_snapshot(i, ConfState(voters=[1, 2]), f"at {i}".encode())
                    self.snapshots.add(snap.SerializeToString())
        self.last = 120
        with raftwal.open(d, recovery="strict", segment_size=SEGMENT_SIZE) as s:
            self.state = state_of(s)

    def breach(self, s: raftwal.DurableStorage) -> str | None:
        """Why what ``s`` recovered is not a prefix of the original, or None."""
        hs, _ = s.initial_state()
        if (hs.term, hs.vote, hs.commit) not in self.hard_states:
            return f"a HardState that was never saved: {hs}"
        if s.snapshot().SerializeToString() not in self.snapshots:
            return "a snapshot that was never saved"
        lo, hi = s.first_index(), s.last_index()
        if hi > self.last:
            return f"last index {hi} beyond the original {self.last}"
        for e in s.entries(lo, hi + 1) if hi >= lo else []:
            if self.entries.get(e.index) != (e.term, e.data):
                return f"entry {e.index} differs from the original"
        return None


def state_of(s: raftwal.DurableStorage) -> tuple[Any, ...]:
    hs, cs = s.initial_state()
    lo, hi = s.first_index(), s.last_index()
    ents = [e.SerializeToString() for e in s.entries(lo, hi + 1)] if hi >= lo else []
    return (
        (hs.term, hs.vote, hs.commit),
        cs.SerializeToString(),
        s.snapshot().SerializeToString(),
        ents,
    )


# --- damage ---------------------------------------------------------------------------------


def _segments(d: Path) -> list[Path]:
    return sorted(p for p in (d / "wal").iterdir() if p.suffix == ".wal" and p.is_file())


def _snaps(d: Path) -> list[Path]:
    return sorted(p for p in (d / "snap").iterdir() if p.suffix == ".snap" and p.is_file())


def _seg_name(seq: int, index: int) -> str:
    return f"{seq:016x}-{index:016x}.wal"


def damage(d: Path, rng: random.Random) -> list[str]:
    """One random structural damage to the data directory ``d``; returns
    what was done ([] when the chosen kind did not apply)."""
    segs, snaps = _segments(d), _snaps(d)
    kind = rng.choice(
        [
            "truncate",
            "zero-sector",
            "length-word",
            "flip",
            "duplicate",
            "rename",
            "swap",
            "delete",
            "leftover-tmp",
            "snap-flip",
            "snap-truncate",
            "snap-delete",
            "snap-garbage",
            "db-tmp",
            "fifo",
        ]
    )
    if kind in {"truncate", "zero-sector", "length-word", "flip"}:
        if not segs:
            return []
        seg = rng.choice(segs)
        raw = bytearray(seg.read_bytes())
        if not raw:
            return []
        if kind == "truncate":
            cut = rng.randrange(len(raw))
            os.truncate(seg, cut)
            return [f"truncate {seg.name} at {cut}"]
        if kind == "zero-sector":
            off = rng.randrange(0, len(raw), 512 if rng.random() < 0.5 else 1)
            raw[off : off + 512] = bytes(len(raw[off : off + 512]))
            seg.write_bytes(bytes(raw))
            return [f"zero 512 bytes of {seg.name} at {off}"]
        if kind == "flip":
            bit = rng.randrange(len(raw) * 8)
            raw[bit // 8] ^= 1 << (bit % 8)
            seg.write_bytes(bytes(raw))
            return [f"flip bit {bit} of {seg.name}"]
        try:
            fr = rng.choice(frames(seg))
        except (AssertionError, IndexError, struct.error):
            return []
        word = rng.choice(
            [
                0,
                1,
                fr.length + 8,
                fr.length - 1,
                (1 << 56) - 1,
                rng.getrandbits(64),
                fr.length | 1 << 63,
            ]
        )
        raw[fr.offset : fr.offset + 8] = struct.pack("<Q", word % (1 << 64))
        seg.write_bytes(bytes(raw))
        return [f"length word of the frame at {fr.offset} of {seg.name} set to {word:#x}"]
    if kind in {"duplicate", "rename", "swap", "delete"}:
        if not segs:
            return []
        seg = rng.choice(segs)
        seq, index = (int(x, 16) for x in seg.stem.split("-"))
        if kind == "duplicate":
            new = (
                d
                / "wal"
                / _seg_name(
                    rng.choice([seq + 1, len(segs) + seq, seq]), rng.choice([index, index + 1, 0])
                )
            )
            if new.exists():
                return []
            shutil.copyfile(seg, new)
            return [f"copy {seg.name} to {new.name}"]
        if kind == "rename":
            new = d / "wal" / _seg_name(seq + rng.choice([0, 1, 5]), rng.randrange(0, 200))
            if new.exists():
                return []
            seg.rename(new)
            return [f"rename {seg.name} to {new.name}"]
        if kind == "swap":
            if len(segs) < 2:
                return []
            a, b = rng.sample(segs, 2)
            ra, rb = a.read_bytes(), b.read_bytes()
            a.write_bytes(rb)
            b.write_bytes(ra)
            return [f"swap {a.name} and {b.name}"]
        seg.unlink()
        return [f"delete {seg.name}"]
    if kind == "leftover-tmp":
        name = rng.choice(["0.tmp", "1.tmp", _seg_name(99, 0) + ".tmp"])
        (d / "wal" / name).write_bytes(rng.randbytes(rng.choice([0, 100, SEGMENT_SIZE])))
        return [f"leftover wal/{name}"]
    if kind in {"snap-flip", "snap-truncate", "snap-delete"}:
        if not snaps:
            return []
        sn = rng.choice(snaps)
        raw = bytearray(sn.read_bytes())
        if kind == "snap-flip":
            bit = rng.randrange(len(raw) * 8)
            raw[bit // 8] ^= 1 << (bit % 8)
            sn.write_bytes(bytes(raw))
            return [f"flip bit {bit} of {sn.name}"]
        if kind == "snap-truncate":
            cut = rng.randrange(len(raw))
            os.truncate(sn, cut)
            return [f"truncate {sn.name} at {cut}"]
        sn.unlink()
        return [f"delete {sn.name}"]
    if kind == "snap-garbage":
        name = snap_file_name(rng.choice([1, 9]), rng.choice([30, 99, 1000]))
        (d / "snap" / name).write_bytes(rng.randbytes(rng.choice([0, 10, 60])))
        return [f"garbage snap/{name}"]
    if kind == "db-tmp":
        (d / "snap" / "db.tmp.1").write_bytes(rng.randbytes(64))
        return ["leftover snap/db.tmp.1"]
    # a FIFO named like the next segment or the newest snapshot
    if rng.random() < 0.5 and segs:
        seq, _ = (int(x, 16) for x in segs[-1].stem.split("-"))
        path = d / "wal" / _seg_name(seq + 1, 500)
    else:
        path = d / "snap" / snap_file_name(9, 999)
    if path.exists():
        return []
    os.mkfifo(path)
    return [f"fifo {path.relative_to(d)}"]


# --- checks ------------------------------------------------------------------------------------


def copy_dir(src: Path, dst: Path) -> None:
    """``shutil.copytree`` that recreates FIFOs instead of reading them."""

    def copy(a: str, b: str) -> None:
        if stat.S_ISFIFO(os.lstat(a).st_mode):
            os.mkfifo(b)
        else:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy)


def contents(d: Path) -> dict[str, bytes]:
    out = {}
    for p in d.rglob("*"):
        if p.is_file() and stat.S_ISREG(p.lstat().st_mode):
            out[str(p.relative_to(d))] = p.read_bytes()
    return out


def suffix_zeroed(old: bytes, new: bytes) -> bool:
    """``new`` is ``old`` with a non-zero suffix zeroed (perhaps then grown
    by zeros): what a writer's wipe of the bytes after the end of the log
    leaves."""
    if len(new) < len(old):
        return False
    k = 0
    while k < len(old) and old[k] == new[k]:
        k += 1
    return not new[k:].strip(b"\0")


def unreported_losses(before: dict[str, bytes], d: Path, rep: Any) -> list[str]:
    """Files of ``before`` that a recovery changed or removed without a
    ``.broken`` copy of their bytes (or, for db.tmp*, a mention in
    ``.recovery.removed``). A spare segment (wal/*.tmp) is not data; a file
    that only grew by zeros (preallocation) is unchanged."""
    after = contents(d)
    lost = []
    removed = {os.path.relpath(p, d) for p in getattr(rep, "removed", [])}
    for name, old in before.items():
        if name.startswith("wal/") and name.endswith(".tmp"):
            continue
        new = after.get(name)
        if new == old:
            continue
        if new is not None and new.startswith(old) and not new[len(old) :].strip(b"\0"):
            continue
        if name in removed:
            continue
        if after.get(name + ".broken") == old:
            continue
        lost.append(name)
    return lost


class Campaign:
    def __init__(self, work: Path, seed: int, keep: Path | None) -> None:
        self.work = work
        self.rng = random.Random(seed)
        self.keep = keep
        self.original_dir = work / "original"
        self.orig = Original(self.original_dir, self.rng)
        self.stats = {
            "cases": 0,
            "cli_runs": 0,
            "opens": 0,
            "tracebacks": 0,
            "hangs": 0,
            "bad_exit_codes": 0,
            "bad_json": 0,
            "read_only_writes": 0,
            "silent_losses": 0,
            # non-zero bytes after the end of the log zeroed by a writable
            # open without a report or a .broken copy (kept apart: the
            # decoder's torn-or-corrupt call for them is not made yet)
            "wiped_after_end_of_log": 0,
            "strict_not_original": 0,
            "unexpected_exceptions": 0,
        }
        self.exit_codes: dict[str, dict[int, int]] = {}
        self.breaches: list[dict[str, Any]] = []

    def breach(self, kind: str, case: Path, damage: list[str], detail: str) -> None:
        self.stats[kind] += 1
        self.breaches.append({"kind": kind, "damage": damage, "detail": detail[:2000]})
        if self.keep is not None:
            dst = self.keep / f"case-{self.stats['cases']}"
            if not dst.exists():
                copy_dir(case, dst)
                (dst.parent / (dst.name + ".json")).write_text(
                    json.dumps({"damage": damage, "detail": detail}, indent=2)
                )

    def fresh(self, src: Path, name: str) -> Path:
        dst = self.work / name
        if dst.exists():
            shutil.rmtree(dst)
        copy_dir(src, dst)
        return dst

    def run_case(self) -> None:
        self.stats["cases"] += 1
        case = self.fresh(self.original_dir, "case")
        damage_done: list[str] = []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            damage_done += damage(case, self.rng)
        if not damage_done:
            return
        # flipped bits and rewritten length words must be noticed by a strict
        # open (or lie where it never reads): it returns exactly the original
        must_detect = all(d.split(" ")[0] in {"flip", "length"} for d in damage_done)
        self.cli(case, damage_done)
        self.opens(case, damage_done, must_detect)

    def cli(self, case: Path, damage_done: list[str]) -> None:
        for cmd in COMMANDS:
            for as_json in (False, True):
                args = [*cmd, *(["--json"] if as_json else [])]
                label = " ".join(args)
                target = case if cmd[0] in READ_ONLY_COMMANDS else self.fresh(case, "cli")
                before = tree(target) if cmd[0] in READ_ONLY_COMMANDS else None
                self.stats["cli_runs"] += 1
                try:
                    r = subprocess.run(
                        [sys.executable, "-m", "raftwal", *args[:1], str(target), *args[1:]],
                        capture_output=True,
                        text=True,
                        timeout=CLI_TIMEOUT,
                    )
                except subprocess.TimeoutExpired:
                    self.breach("hangs", case, damage_done, label)
                    continue
                codes = self.exit_codes.setdefault(label, {})
                codes[r.returncode] = codes.get(r.returncode, 0) + 1
                if "Traceback" in r.stdout + r.stderr:
                    self.breach("tracebacks", case, damage_done, f"{label}: {r.stderr}")
                if r.returncode not in (0, 1, 2):
                    self.breach("bad_exit_codes", case, damage_done, f"{label}: {r.returncode}")
                if as_json and not json_documents_ok(cmd[0], r.stdout):
                    self.breach("bad_json", case, damage_done, f"{label}: {r.stdout[:500]}")
                if before is not None and tree(target) != before:
                    self.breach("read_only_writes", case, damage_done, label)

    def opens(self, case: Path, damage_done: list[str], must_detect: bool) -> None:
        calls: list[tuple[str, Callable[[Path], Any]]] = [
            (f"open {m}", lambda d, m=m: raftwal.open(d, recovery=m, segment_size=SEGMENT_SIZE))
            for m in MODES
        ]
        calls.append(("open read_only", lambda d: raftwal.open(d, read_only=True)))
        for label, call in calls:
            read_only = label.endswith("read_only")
            target = case if read_only else self.fresh(case, "open")
            before_tree = tree(target)
            before = contents(target)
            self.stats["opens"] += 1
            try:
                s = call(target)
            except raftwal.Error:
                rep = None
            except Exception as exc:
                self.breach("unexpected_exceptions", case, damage_done, f"{label}: {exc!r}")
                continue
            else:
                with s:
                    rep = s.recovery
                    why = self.orig.breach(s)
                    if why is not None:
                        self.breach("silent_losses", case, damage_done, f"{label}: {why}")
                    if label == "open strict" and must_detect and state_of(s) != self.orig.state:
                        self.breach("strict_not_original", case, damage_done, label)
            if read_only or label == "open strict":
                if tree(target) != before_tree and read_only:
                    self.breach("read_only_writes", case, damage_done, label)
            lost = unreported_losses(before, target, rep)
            after = contents(target)
            wiped = [n for n in lost if n in after and suffix_zeroed(before[n], after[n])]
            if wiped:
                self.breach("wiped_after_end_of_log", case, damage_done, f"{label}: {wiped}")
            if set(lost) - set(wiped):
                self.breach("silent_losses", case, damage_done, f"{label}: changed {lost}")
        before_tree = tree(case)
        try:
            with WAL.open_for_read(case / "wal") as w:
                w.read_all()
        except raftwal.Error:
            pass
        except Exception as exc:
            self.breach("unexpected_exceptions", case, damage_done, f"open_for_read: {exc!r}")
        if tree(case) != before_tree:
            self.breach("read_only_writes", case, damage_done, "open_for_read")

    def summary(self, seconds: float, seed: int) -> dict[str, Any]:
        return {
            "seed": seed,
            "seconds": round(seconds, 1),
            **self.stats,
            "exit_codes": self.exit_codes,
            "breaches": self.breaches[:20],
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="time budget")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", type=Path, help="copy each breaching case here")
    p.add_argument("--max-cases", type=int, default=0, help="stop after this many (0: no limit)")
    args = p.parse_args(argv)
    # a hang inside this process (not a subprocess) dumps every thread and exits
    faulthandler.dump_traceback_later(args.seconds + 600, exit=True)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="raftwal-torture-") as tmp:
        c = Campaign(Path(tmp), args.seed, args.keep)
        while time.monotonic() - t0 < args.seconds:
            c.run_case()
            if args.max_cases and c.stats["cases"] >= args.max_cases:
                break
        summary = c.summary(time.monotonic() - t0, args.seed)
    faulthandler.cancel_dump_traceback_later()
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0 if not c.breaches else 1


if __name__ == "__main__":
    raise SystemExit(main())
