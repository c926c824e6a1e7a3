"""Child process of tests/faults/test_trust_faults.py: a seeded random run of the
DurableStorage model (tests/unit/test_trust_model.py) against the failpoints
build, with RAFTWAL_FAILPOINTS set by the parent. Prints one JSON line an
event on stdout:

    {"ack": state}     the calls so far returned: the storage holds `state`
    {"maybe": state}   a call that failed may still have reached the disk
    {"error": cls}     the first failure, as the caller saw it
    {"after": cls}     what the next save raised (the storage is poisoned)
    {"done": true}     the run ended without a failure

`state` is the model's durable view: HardState, snapshot, entries.
"""

from __future__ import annotations

import json
import random
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

# the model lives beside the tests that use it in-process
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_trust_model import Model, check_storage, payload

import raftwal
from raftwal import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

OPTS: dict[str, Any] = dict(
    segment_size=1024, catch_up_entries=3, max_snapshots=1, max_wals=1, snapshot_count=5
)


def state(m: Model) -> dict[str, Any]:
    return {
        "hs": [m.hs.term, m.hs.vote, m.hs.commit],
        "snap": [m.snap_index, m.snap_term, (m.snap_data or b"").hex(), list(m.snap_cs.voters)],
        "entries": [
            [e.index, e.term, int(e.type), e.data.hex()]
            for e in (m.log[i] for i in range(m.snap_index + 1, m.last + 1))
        ],
    }


def memory(s: raftwal.DurableStorage) -> dict[str, Any]:
    """What the storage shows: the same shape as `state`, entries from its
    first index (memory may be compacted past the snapshot)."""
    hs, cs = s.initial_state()
    snap = s.snapshot()
    first, last = s.first_index(), s.last_index()
    md = snap.metadata
    return {
        "hs": [hs.term, hs.vote, hs.commit],
        "snap": [md.index, md.term, snap.data.hex(), list(cs.voters)],
        "entries": [
            [e.index, e.term, int(e.type), e.data.hex()]
            for e in (s.entries(first, last + 1) if last >= first else [])
        ],
        "last": last,
    }


def emit(**kw: Any) -> None:
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def batch(m: Model, rng: random.Random) -> list[Entry]:
    back = rng.choice([0, 0, 0, 1, 2])
    start = max(m.last + 1 - back, m.hs.commit + 1, m.first, m.snap_index + 1)
    if start <= m.last:
        m.term += 1
    n = rng.randint(1, 4)
    return [Entry(term=m.term, index=i, data=payload(i, m.term)) for i in range(start, start + n)]


def settle(futs: list[tuple[Future[None], dict[str, Any]]]) -> None:
    """Wait for a stream's saves in order, acknowledging each that landed."""
    while futs:
        f, st = futs[0]
        f.result(timeout=60)
        futs.pop(0)
        emit(ack=st)  # an ack in the middle of a stream


def main() -> None:
    data_dir, seed, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    assert raftwal._native.FAILPOINTS, "not the failpoints build"
    rng = random.Random(seed)
    m = Model()
    try:
        s = raftwal.open(data_dir, **OPTS)
    except (raftwal.Error, OSError) as exc:
        emit(error=type(exc).__name__)
        return
    emit(ack=state(m))
    for _ in range(steps):
        op = rng.choice(["save", "save", "stream", "stream", "commit", "snapshot", "leader"])
        emit(op=op)
        futs: list[tuple[Future[None], dict[str, Any]]] = []
        try:
            if op == "save":
                ents = batch(m, rng)
                m.append(ents)
                m.hs = HardState(m.term, 1, min(m.hs.commit + rng.randint(0, 4), m.last))
                emit(maybe=state(m))
                s.save(m.hs, ents)
            elif op == "stream":
                for _ in range(rng.randint(1, 5)):
                    ents = batch(m, rng)
                    m.append(ents)
                    m.hs = HardState(m.term, 1, max(m.hs.commit, ents[0].index - 1))
                    emit(maybe=state(m))
                    futs.append((s.save_async(m.hs, ents), state(m)))
                settle(futs)
            elif op == "commit":
                m.hs = HardState(m.hs.term, 1, min(m.hs.commit + rng.randint(1, 4), m.last))
                emit(maybe=state(m))
                s.save(m.hs, [])
                s.wal.sync()  # a commit-only HardState is buffered: make it durable
            elif op == "snapshot":
                lo = max(m.snap_index + 1, m.first - 1)
                if lo > m.hs.commit:
                    continue
                i = rng.randint(lo, m.hs.commit)
                t = m.term_at(i)
                snap_cs = ConfState(voters=[1, rng.randint(2, 5)])
                m.snap_index, m.snap_term, m.snap_data, m.snap_cs = i, t, b"s@%d" % i, snap_cs
                compact = i - 3 if i > 3 else 1
                if compact >= m.first:
                    m.first = compact + 1
                emit(maybe=state(m))
                s.create_snapshot(i, snap_cs, b"s@%d" % i)
            else:
                si = m.last + rng.randint(1, 3)
                m.term += 1
                snap = Snapshot(
                    data=b"leader@%d" % si,
                    metadata=SnapshotMetadata(
                        conf_state=ConfState(voters=[1, 2]), index=si, term=m.term
                    ),
                )
                ents = [Entry(term=m.term, index=si + 1, data=payload(si + 1, m.term))]
                m.log = {e.index: e for e in ents}
                m.snap_index, m.snap_term, m.snap_data = si, m.term, snap.data
                m.snap_cs, m.first, m.anchors[si] = ConfState(voters=[1, 2]), si + 1, m.term
                m.hs = HardState(m.term, 1, si)
                emit(maybe=state(m))
                s.save(m.hs, ents, snap)
        except (raftwal.Error, OSError) as exc:
            try:
                settle(futs)  # saves of a stream made before the failure may have landed
            except (raftwal.Error, OSError):
                pass
            emit(error=type(exc).__name__)
            emit(mem=memory(s))
            try:
                s.save(HardState(m.term, 1, m.hs.commit), [Entry(term=m.term, index=m.last + 1)])
                emit(after="none")
            except (raftwal.Error, OSError) as exc2:
                emit(after=type(exc2).__name__)
            try:
                s.close()
            except (raftwal.Error, OSError):
                pass
            return
        emit(ack=state(m))
        check_storage(s, m)
    s.close()
    emit(done=True)


if __name__ == "__main__":
    main()
