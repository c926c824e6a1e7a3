"""Simulated power loss, with no fault layer in the library.

A workload runs through ``raftwal.WAL`` (and another through
``raftwal.open``). After every call that returns having synced (a save that
MustSync, ``save_snapshot``, ``sync``, a cut inside a save,
``create_snapshot``, an open), the directory's exact state is captured: S_k,
what must survive a power loss from then on. A save that need not sync (a
commit-only HardState) is not captured: its bytes may be lost and belong to
the next step.

Between S_k and S_{k+1} the bytes that changed are what the machine may have
written or not when the power failed. For every k, disk images are built
from S_k plus a prefix of the changes, in the order the library makes them
durable (snapshot files, then WAL segments by name, then deletions by the
purges), at 512-byte sector granularity: the last sector complete, zeroed
(its new bytes read as zeros; bytes synced before in the same sector stay,
or no log could survive) or half written (first 256 bytes new, the rest
old), the later ones dropped; or one sector dropped with the later sectors
of its file written (pages written back out of order); a new segment
absent, or present with a torn prefix of its bytes (a preallocated file,
zeros past what reached it).

Recovery of every image (``WAL.open`` + ``read_all``, with ``repair`` on a
``TornTailError`` as etcd's restart does; or ``raftwal.open``) must succeed
and give exactly the state of a prefix of the records written since S_k:
S_k's entries and HardState plus possibly some whole records of step k+1,
never anything else; the recovered log must then take an append and read
back. Images are deduplicated and sampled (``RAFTWAL_POWER_LOSS_IMAGES``
per test, default 900).

Half-written sectors (a sector whose first half holds the new bytes and
whose second half the old zeros) must recover too. etcd 3.4 recognises a
torn record only by an all-zero 512-byte chunk and refuses such an image
(test_half_written_final_sector_etcd_refuses_too shows it); raftwal also
takes a failing last record followed by nothing but zeros for an
unfinished write.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import raftwal
from raftwal import WAL, ConfState, Entry, HardState, TornTailError, WalSnapshot

SECTOR = 512
MAX_IMAGES = int(os.environ.get("RAFTWAL_POWER_LOSS_IMAGES", "900"))
SEGMENT_SIZE = 2048
# entry sizes: frames inside a sector, straddling sectors, larger than a page
SIZES = [10, 300, 700, 5000, 50, 1500, 4100, 9000, 20, 600, 130, 2600]
NODE_OPTIONS: dict[str, Any] = dict(
    snapshot_count=5,
    catch_up_entries=2,
    max_snapshots=2,
    max_wals=2,
    segment_size=SEGMENT_SIZE,
)

Files = dict[str, bytes]  # relative path -> contents


class Verdict(NamedTuple):
    problem: str | None = None  # None: recovered to a legal state
    refused: bool = False  # the problem is that recovery raised (not wrong data)
    beyond: bool = False  # legal, with records written after S_k


def payload(index: int, term: int, size: int) -> bytes:
    head = b"%d/%d:" % (term, index)
    block = hashlib.blake2b(head, digest_size=32).digest()
    return (head + block * (size // 32 + 1))[:size]


def snapshot_data(index: int) -> bytes:
    return b"through %d" % index


# --- what a prefix of the records replays to ----------------------------------------------


class State(NamedTuple):
    entries: tuple[tuple[int, int, int, bytes | None], ...]  # (term, index, type, data)
    hs: tuple[int, int, int]
    snaps: tuple[tuple[int, int], ...]  # WAL snapshot records (index, term)


def key(e: Entry) -> tuple[int, int, int, bytes | None]:
    return (e.term, e.index, int(e.type), e.data)


@dataclass
class Log:
    """The records a workload wrote, and the state each prefix replays to."""

    states: list[State] = field(default_factory=lambda: [State((), (0, 0, 0), ())])

    def entries(self, ents: list[Entry]) -> None:
        for e in ents:
            cur = self.states[-1]
            assert 1 <= e.index <= len(cur.entries) + 1
            self.states.append(cur._replace(entries=(*cur.entries[: e.index - 1], key(e))))

    def state(self, hs: HardState) -> None:
        if hs != HardState():
            self.states.append(self.states[-1]._replace(hs=(hs.term, hs.vote, hs.commit)))

    def save(self, hs: HardState, ents: list[Entry]) -> None:
        self.entries(ents)
        self.state(hs)

    def snap(self, index: int, term: int) -> None:
        cur = self.states[-1]
        self.states.append(cur._replace(snaps=(*cur.snaps, (index, term))))


@dataclass
class Step:
    label: str
    files: Files
    records: int  # len(Log.states) - 1 when captured


@dataclass
class Recording:
    root: Path
    skip: Callable[[str], bool]
    log: Log = field(default_factory=Log)
    steps: list[Step] = field(default_factory=list)

    def capture(self, label: str) -> None:
        files = {}
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                if not self.skip(rel):
                    files[rel] = Path(dirpath, name).read_bytes()
        if self.steps and files == self.steps[-1].files:
            self.steps[-1].records = len(self.log.states) - 1
            return
        self.steps.append(Step(label, files, len(self.log.states) - 1))


# --- disk images -----------------------------------------------------------------------------


class Unit(NamedTuple):
    kind: str  # "create", "sector", "size", "delete"
    path: str
    sector: int = 0


def units_between(
    old: Files, new: Files, order: Callable[[str, bool], tuple[Any, ...]]
) -> list[Unit]:
    """The changes from ``old`` to ``new``, in the order they become durable."""
    out: list[tuple[tuple[Any, ...], int, Unit]] = []
    for path in new:
        o, n = old.get(path), new[path]
        if o == n:
            continue
        k = order(path, False)
        seq = 0
        if o is None:
            out.append((k, seq, Unit("create", path)))
            o = b""
        for sec in range((max(len(o), len(n)) + SECTOR - 1) // SECTOR):
            a = o[sec * SECTOR : (sec + 1) * SECTOR].ljust(SECTOR, b"\0")
            b = n[sec * SECTOR : (sec + 1) * SECTOR].ljust(SECTOR, b"\0")
            if a != b:
                seq += 1
                out.append((k, seq, Unit("sector", path, sec)))
        if len(o) != len(n):
            out.append((k, seq + 1, Unit("size", path)))
    for path in old:
        if path not in new:
            out.append((order(path, True), 0, Unit("delete", path)))
    out.sort(key=lambda t: (t[0], t[1]))
    return [u for _, _, u in out]


class Spec(NamedTuple):
    full: int  # units applied whole
    last: str | None  # how unit ``full`` is applied: "zeroed", "half", "hole" or not at all
    hole_end: int = 0  # for "hole": units (full, hole_end) are applied, unit ``full`` is not


def specs_for(units: list[Unit]) -> Iterator[Spec]:
    for n in range(len(units) + 1):
        yield Spec(n, None)
    for n, u in enumerate(units):
        if u.kind != "sector":
            continue
        yield Spec(n, "zeroed")
        yield Spec(n, "half")
        end = n + 1
        while end < len(units) and units[end].kind == "sector" and units[end].path == u.path:
            end += 1
        if end > n + 1:
            yield Spec(n, "hole", end)


def build_image(old: Files, new: Files, units: list[Unit], spec: Spec) -> Files:
    files = {p: bytearray(b) for p, b in old.items()}

    def put(u: Unit, data: bytes) -> None:
        f = files[u.path]
        target = new[u.path]
        start = u.sector * SECTOR
        end = min(len(target), start + SECTOR)
        if len(f) < end:
            f.extend(bytes(end - len(f)))
        f[start:end] = data[: end - start]

    def apply(u: Unit, how: str | None) -> None:
        if u.kind == "create":
            # a segment comes from a preallocated (zeroed) file; anything else is empty
            files[u.path] = bytearray(len(new[u.path]) if u.path.endswith(".wal") else 0)
        elif u.kind == "delete":
            files.pop(u.path, None)
        elif u.kind == "size":
            f = files[u.path]
            n = len(new[u.path])
            del f[n:]
            f.extend(bytes(n - len(f)))
        else:
            start = u.sector * SECTOR
            sector = new[u.path][start : start + SECTOR]
            before = bytes(files[u.path][start : start + SECTOR]).ljust(len(sector), b"\0")
            if how == "zeroed":
                # what the save changed reads as zeros; bytes synced before stay
                put(u, bytes(0 if a != b else a for a, b in zip(sector, before, strict=True)))
            elif how == "half":
                put(u, sector[: SECTOR // 2] + before[SECTOR // 2 :])
            else:
                put(u, sector)

    for u in units[: spec.full]:
        apply(u, None)
    if spec.last == "hole":
        for u in units[spec.full + 1 : spec.hole_end]:
            apply(u, None)
    elif spec.last is not None:
        apply(units[spec.full], spec.last)
    return {p: bytes(b) for p, b in files.items()}


def write_image(files: Files, dest: Path, dirs: tuple[str, ...]) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(mode=0o700)
    for d in dirs:
        (dest / d).mkdir(mode=0o700)
    for rel, data in files.items():
        (dest / rel).write_bytes(data)
        os.chmod(dest / rel, 0o600)


class Image(NamedTuple):
    k: int  # between steps k and k+1
    spec: Spec
    files: Files


def images(
    rec: Recording,
    order: Callable[[str, bool], tuple[Any, ...]],
    keep: Callable[[Spec], bool],
    sample_seed: int,
) -> tuple[list[Image], int]:
    """Every distinct image of every step whose spec ``keep`` accepts
    (sampled down to MAX_IMAGES), and how many there were."""
    seen: set[bytes] = set()
    found: list[tuple[int, Spec, list[Unit]]] = []
    for k in range(len(rec.steps) - 1):
        old, new = rec.steps[k].files, rec.steps[k + 1].files
        units = units_between(old, new, order)
        for spec in filter(keep, specs_for(units)):
            files = build_image(old, new, units, spec)
            h = hashlib.blake2b(repr(sorted(files.items())).encode()).digest()
            if h not in seen:
                seen.add(h)
                found.append((k, spec, units))
    total = len(found)
    rng = random.Random(sample_seed)
    if total > MAX_IMAGES:
        found = rng.sample(found, MAX_IMAGES)
    out = []
    for k, spec, units in found:
        old, new = rec.steps[k].files, rec.steps[k + 1].files
        out.append(Image(k, spec, build_image(old, new, units, spec)))
    return out, total


# --- workloads ------------------------------------------------------------------------------


def wal_order(path: str, deleted: bool) -> tuple[Any, ...]:
    return (deleted, path)


def node_order(path: str, deleted: bool) -> tuple[Any, ...]:
    # create_snapshot: the .snap file, then the WAL record, then the purges
    return (deleted, not path.startswith("snap/") if not deleted else path.startswith("wal/"), path)


def skip_spare(rel: str) -> bool:
    """Files no recovery reads: the WAL's preallocated spares, snapshot temporaries."""
    return rel.endswith(".tmp")


def run_wal_workload(d: Path) -> Recording:
    rec = Recording(d, skip_spare)
    log = rec.log
    rng = random.Random(7)
    sizes = iter(SIZES * 100)
    w = WAL.create(d, b"meta", segment_size=SEGMENT_SIZE)
    log.snap(0, 0)
    rec.capture("create")
    term, vote, commit, last = 1, 1, 0, 0
    terms = {0: 0}
    try:
        for _ in range(48):
            r = rng.random()
            if r < 0.5 or last < 3:
                ents = []
                for _ in range(rng.choice([1, 1, 2, 3])):
                    last += 1
                    ents.append(Entry(term=term, index=last, data=payload(last, term, next(sizes))))
                    terms[last] = term
                commit = max(commit, last - 1)
                hs = HardState(term, vote, commit)
                w.save(hs, ents)
                log.save(hs, ents)
                rec.capture(f"save {ents[0].index}-{last}")
            elif r < 0.6:
                # commit-only HardStates are not synced: they belong to the next step
                for _ in range(rng.choice([1, 2])):
                    commit = min(last, commit + 1)
                    hs = HardState(term, vote, commit)
                    w.save(hs, [])
                    log.save(hs, [])
                w.sync()
                rec.capture("commit + sync")
            elif r < 0.68:
                term += 1
                vote = rng.choice([1, 2, 3])
                hs = HardState(term, vote, commit)
                w.save(hs, [])  # a new term/vote must sync
                log.save(hs, [])
                rec.capture(f"term {term}")
            elif r < 0.8:
                index = rng.randint(max(1, commit - 2), commit)
                w.save_snapshot(WalSnapshot(index=index, term=terms[index]))
                log.snap(index, terms[index])
                rec.capture(f"snapshot {index}")
            else:
                # a new leader overwrites the uncommitted tail
                term += 1
                start = max(commit + 1, last - 1)
                ents = []
                for i in range(start, start + rng.choice([1, 2])):
                    ents.append(Entry(term=term, index=i, data=payload(i, term, next(sizes))))
                    terms[i] = term
                last = ents[-1].index
                hs = HardState(term, vote, commit)
                w.save(hs, ents)
                log.save(hs, ents)
                rec.capture(f"overwrite {start}-{last} term {term}")
    finally:
        w.close()
    return rec


def run_node_workload(d: Path) -> Recording:
    rec = Recording(d, skip_spare)
    log = rec.log
    rng = random.Random(11)
    sizes = iter(SIZES * 100)
    cs = ConfState(voters=[1])
    s = raftwal.open(d, **NODE_OPTIONS)
    log.snap(0, 0)
    rec.capture("open")
    last = 0
    try:
        for _ in range(45):
            r = rng.random()
            if r < 0.45:
                ents = []
                for _ in range(rng.choice([1, 1, 2])):
                    last += 1
                    ents.append(Entry(term=1, index=last, data=payload(last, 1, next(sizes))))
                hs = HardState(1, 1, last)
                s.save(hs, ents)
                log.save(hs, ents)
                rec.capture(f"save {ents[0].index}-{last}")
            elif r < 0.85:
                futs = []
                for _ in range(rng.choice([2, 3, 4])):
                    last += 1
                    ents = [Entry(term=1, index=last, data=payload(last, 1, next(sizes)))]
                    hs = HardState(1, 1, last)
                    futs.append(s.save_async(hs, ents))
                    log.save(hs, ents)
                for f in futs:
                    f.result(timeout=30)
                rec.capture(f"save_async through {last}")
            else:
                s.close()
                s = raftwal.open(d, **NODE_OPTIONS)
                rec.capture("reopen")
            if s.needs_snapshot(last):
                s.create_snapshot(last, cs, snapshot_data(last))
                log.snap(last, 1)
                rec.capture(f"snapshot {last}")
    finally:
        s.close()
    return rec


# --- recovery and its checks -------------------------------------------------------------------


def legal_states(rec: Recording, k: int) -> list[State]:
    """States of every record prefix from S_k's to S_{k+1}'s."""
    return rec.log.states[rec.steps[k].records : rec.steps[k + 1].records + 1]


def recover_wal(d: Path) -> tuple[WAL, bytes, HardState, list[Entry], bool]:
    repaired = False
    while True:
        w = WAL.open(d, segment_size=SEGMENT_SIZE)
        try:
            md, hs, ents = w.read_all()
            return w, md, hs, ents, repaired
        except TornTailError:
            w.close()
            if repaired:
                raise
            assert raftwal.repair(d), "repair refused a torn tail"
            repaired = True
        except BaseException:
            w.close()
            raise


def check_wal_image(rec: Recording, img: Image, d: Path) -> Verdict:
    """Recover the image with WAL.open/read_all (repairing a torn tail) and judge it."""
    write_image(img.files, d, ())
    try:
        w, md, hs, ents, _ = recover_wal(d)
    except raftwal.Error as exc:
        return Verdict(f"recovery raised {exc!r}", refused=True)
    with w:
        got_hs = (hs.term, hs.vote, hs.commit)
        got = tuple(key(e) for e in ents)
        legal = legal_states(rec, img.k)
        matches = [s for s in legal if s.entries == got and s.hs == got_hs]
        if md != b"meta":
            return Verdict(f"metadata {md!r}")
        if not matches:
            return Verdict(
                f"recovered {len(got)} entries (last {got[-1][:2] if got else None}) and "
                f"HardState {got_hs}: not a prefix of the records since S_{img.k}"
            )
        try:
            snaps = [(s.index, s.term) for s in raftwal.valid_snapshot_entries(d)]
        except raftwal.Error as exc:
            return Verdict(f"valid_snapshot_entries raised {exc!r}")
        if all(snaps != [x for x in m.snaps if x[0] <= got_hs[2]] for m in matches):
            return Verdict(f"snapshot records {snaps} do not match the recovered prefix")
        # the recovered log takes an append and reads back
        term = max(hs.term, got[-1][0] if got else 0)
        extra = Entry(term=term, index=len(got) + 1, data=b"after the power came back")
        w.save(HardState(term, hs.vote, hs.commit), [extra])
    try:
        w, md, _, ents2, repaired = recover_wal(d)
    except raftwal.Error as exc:
        return Verdict(f"reopening after an append raised {exc!r}")
    with w:
        if repaired or tuple(key(e) for e in ents2) != (*got, key(extra)):
            return Verdict("the append after recovery did not read back")
    return Verdict(beyond=legal[0] not in matches)


def check_node_image(rec: Recording, img: Image, d: Path, snap_files: Files) -> Verdict:
    """Recover the image with raftwal.open and judge it."""
    write_image(img.files, d, ("wal", "snap"))
    try:
        s = raftwal.open(d, **NODE_OPTIONS)
    except raftwal.Error as exc:
        return Verdict(f"raftwal.open raised {exc!r}", refused=True)
    with s:
        hs, _ = s.initial_state()
        snap = s.snapshot()
        si = snap.metadata.index
        first, last = s.first_index(), s.last_index()
        got = tuple(key(e) for e in s.entries(first, last + 1)) if last >= first else ()
        got_hs = (hs.term, hs.vote, hs.commit)
        if si and snap.data != snapshot_data(si):
            return Verdict(f"snapshot {si} holds {snap.data!r}")
        intact = {
            int(p[-21:-5], 16)
            for p, b in img.files.items()
            if p.startswith("snap/") and p.endswith(".snap") and b == snap_files[p]
        }
        matched = None
        for n, st in enumerate(legal_states(rec, img.k)):
            if st.hs != got_hs or tuple(e for e in st.entries if e[1] > si) != got:
                continue
            usable = [x for x, _ in st.snaps if x <= st.hs[2] and (x == 0 or x in intact)]
            if si == max(usable, default=0):
                matched = n
                break
        if matched is None:
            return Verdict(
                f"recovered snapshot {si}, entries {first}..{last}, HardState {got_hs}: "
                f"not a prefix of the records since S_{img.k}"
            )
        e = Entry(term=1, index=last + 1, data=b"after the power came back")
        s.save(HardState(1, 1, last + 1), [e])
    try:
        with raftwal.open(d, **NODE_OPTIONS) as s:
            if (
                s.last_index() != last + 1
                or s.entries(last + 1, last + 2) != [e]
                or s.recovery.repaired
            ):
                return Verdict("the append after recovery did not read back")
    except raftwal.Error as exc:
        return Verdict(f"reopening after an append raised {exc!r}")
    return Verdict(beyond=matched > 0)


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wal_recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    rec = run_wal_workload(tmp_path_factory.mktemp("wal-workload") / "wal")
    assert len([p for p in rec.steps[-1].files if p.endswith(".wal")]) >= 10
    return rec


@pytest.fixture(scope="module")
def node_recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    rec = run_node_workload(tmp_path_factory.mktemp("node-workload") / "data")
    assert any(step.label.startswith("snapshot") for step in rec.steps)
    return rec


def all_snap_files(rec: Recording) -> Files:
    out: Files = {}
    for step in rec.steps:
        out.update({p: b for p, b in step.files.items() if p.startswith("snap/")})
    return out


def run_images(
    name: str,
    rec: Recording,
    order: Callable[[str, bool], tuple[Any, ...]],
    check: Callable[[Image, Path], Verdict],
    tmp_path: Path,
    keep: Callable[[Spec], bool],
    dirs: tuple[str, ...],
    *,
    allow_refusal: bool = False,
) -> Counter[str]:
    """Check the sampled images; fail on any wrong recovery, and on any
    refusal to recover unless ``allow_refusal``. Returns counts."""
    imgs, total = images(rec, order, keep, sample_seed=len(name))
    stats: Counter[str] = Counter()
    failures = []
    for n, img in enumerate(imgs):
        old, new = rec.steps[img.k].files, rec.steps[img.k + 1].files
        for p in new:
            if p.endswith(".wal") and p not in old:
                stats["new segment absent" if p not in img.files else "new segment torn"] += (
                    p not in img.files or img.files[p] != new[p]
                )
        verdict = check(img, tmp_path / "image")
        if verdict.problem is None:
            stats["recovered"] += 1
            stats["beyond"] += verdict.beyond
            continue
        stats["refused" if verdict.refused else "wrong"] += 1
        if verdict.refused and allow_refusal:
            continue
        dest = tmp_path / f"failed-{n}"
        write_image(img.files, dest, dirs)
        failures.append(
            f"S_{img.k} ({rec.steps[img.k].label}) -> S_{img.k + 1} "
            f"({rec.steps[img.k + 1].label}), {img.spec}: {verdict.problem} "
            f"[image kept in {dest}]"
        )
    print(
        f"\n{name}: {len(rec.steps)} synced states, {total} distinct images, {len(imgs)} checked: "
        f"{stats['recovered']} recovered to a legal state ({stats['beyond']} of them with records "
        f"written after S_k), {stats['refused']} refused to recover, "
        f"{stats['wrong']} wrong ({stats['new segment absent']} with a new segment absent, "
        f"{stats['new segment torn']} with it torn)"
    )
    assert not failures, f"{len(failures)} of {len(imgs)} images failed:\n" + "\n".join(
        failures[:15]
    )
    return stats


def sector_atomic(spec: Spec) -> bool:
    return spec.last != "half"


def half_sector(spec: Spec) -> bool:
    return spec.last == "half"


def test_wal_power_loss(wal_recording: Recording, tmp_path: Path) -> None:
    rec = wal_recording
    run_images(
        "WAL",
        rec,
        wal_order,
        lambda img, d: check_wal_image(rec, img, d),
        tmp_path,
        sector_atomic,
        (),
    )


def test_node_power_loss(node_recording: Recording, tmp_path: Path) -> None:
    rec = node_recording
    snaps = all_snap_files(rec)
    run_images(
        "node",
        rec,
        node_order,
        lambda img, d: check_node_image(rec, img, d, snaps),
        tmp_path,
        sector_atomic,
        ("wal", "snap"),
    )


def test_wal_power_loss_half_written_sector(wal_recording: Recording, tmp_path: Path) -> None:
    rec = wal_recording
    run_images(
        "WAL, half-written sectors",
        rec,
        wal_order,
        lambda img, d: check_wal_image(rec, img, d),
        tmp_path,
        half_sector,
        (),
        allow_refusal=False,
    )


def test_node_power_loss_half_written_sector(node_recording: Recording, tmp_path: Path) -> None:
    rec = node_recording
    snaps = all_snap_files(rec)
    run_images(
        "node, half-written sectors",
        rec,
        node_order,
        lambda img, d: check_node_image(rec, img, d, snaps),
        tmp_path,
        half_sector,
        ("wal", "snap"),
        allow_refusal=False,
    )


# --- a half-written final sector: etcd 3.4 refuses it, raftwal repairs it -----------------


def half_written_sector(d: Path) -> None:
    """A WAL whose entry 1 is synced and whose entry 2 was being written when
    the power failed: the first half of its sector reached the disk, the
    second half still holds the old (zero) bytes, and the record ends there."""
    with WAL.create(d, b"", segment_size=1 << 20) as w:
        w.save(HardState(1, 1, 1), [Entry(term=1, index=1, data=b"a" * 20)])
        seg = sorted(d.glob("*.wal"))[0]
        synced = seg.read_bytes()
        w.save(HardState(1, 1, 1), [Entry(term=1, index=2, data=b"b" * 200)])
        written = seg.read_bytes()
    # entry 2's frame is bytes 128..352 of sector 0
    seg.write_bytes(written[:256] + synced[256:])


def test_half_written_final_sector_is_repaired(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    half_written_sector(d)
    w, _, hs, ents, repaired = recover_wal(d)
    with w:
        assert [key(e) for e in ents] == [(1, 1, 0, b"a" * 20)]
        assert (hs.term, hs.vote, hs.commit) == (1, 1, 1)
        assert repaired


@pytest.mark.interop
def test_half_written_final_sector_etcd_refuses_too(tmp_path: Path) -> None:
    """etcd 3.4's own code refuses this image: its torn-write test looks only
    for a whole zeroed 512-byte chunk. raftwal also takes a failing final
    record followed by nothing but zeros for an unfinished write."""
    from etcdref import require_etcdref

    ref = require_etcdref()
    d = tmp_path / "wal"
    half_written_sector(d)
    assert ref.readall(d, write=True)["error"] == "walpb: crc mismatch"
    assert ref.repair(d)["ok"] is False
    with pytest.raises(raftwal.TornTailError), WAL.open(d) as w:
        w.read_all()
    assert raftwal.repair(d) is True
    with WAL.open(d) as w:
        assert [e.index for e in w.read_all()[2]] == [1]
