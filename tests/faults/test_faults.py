"""Faults injected through the failpoints build (cargo feature `failpoints`):
every write, fsync, preallocation, directory fsync, cut step and snapshot
record can fail with EIO or ENOSPC, or the process can be killed there.

Each case runs a child process (tests/support/fault_child.py) that appends with
`save` and `save_async` and prints what was acknowledged. The parent then
checks that the failure reached the caller as a typed OSError, that the WAL
refused every later save (poisoned), and that reopening with the normal
build recovers every acknowledged entry and takes new appends.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from failpoint_build import child_env
from fault_child import payload

import raftwal
from raftwal import Entry, HardState

CHILD = Path(__file__).resolve().parents[1] / "support" / "fault_child.py"

# (site, which hit fires): late enough to land mid-workload
IO_SITES = [
    ("write_before", 9),
    ("write_after", 9),
    ("fsync_before", 9),
    ("fsync_after", 9),
    ("preallocate", 3),
    ("dirsync_before", 2),
    ("cut_before_truncate", 2),
    ("cut_before_header", 2),
    ("cut_before_rename", 2),
    ("cut_after_rename", 2),
    ("snapshot_before_record", 2),
]


def run_child(
    d: Path, spec: str, mode: str = "sync", count: int = 150
) -> tuple[int, list[list[str]]]:
    r = subprocess.run(
        [sys.executable, str(CHILD), str(d), mode, str(count)],
        env=child_env(RAFTWAL_FAILPOINTS=spec),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, [ln.split() for ln in r.stdout.splitlines()]


def acked(lines: list[list[str]]) -> int:
    return max((int(x[1]) for x in lines if x[0] == "ack"), default=0)


def check_recovered(d: Path, acked_index: int) -> None:
    """Every acknowledged entry is there and intact; the log takes appends."""
    with raftwal.open(d, segment_size=4096) as s:
        first, last = s.first_index(), s.last_index()
        assert last >= acked_index
        snap = s.snapshot()
        if not snap.is_empty():
            assert snap.data == b"through %d" % snap.metadata.index
        for e in s.entries(first, last + 1) if last >= first else []:
            assert e.data == payload(e.index), e.index
        s.save(HardState(1, 1, last), [Entry(term=1, index=last + 1, data=payload(last + 1))])
    with raftwal.open(d, segment_size=4096) as s:
        assert s.last_index() == last + 1


@pytest.mark.parametrize("err", ["eio", "enospc"])
@pytest.mark.parametrize(("site", "nth"), IO_SITES, ids=[s for s, _ in IO_SITES])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_injected_error_poisons_and_loses_nothing(
    tmp_path: Path, site: str, nth: int, err: str, mode: str
) -> None:
    d = tmp_path / "data"
    rc, lines = run_child(d, f"{site}={err}@{nth}", mode)
    assert rc == 0
    errors = [x for x in lines if x[0] == "error"]
    assert errors, f"{site}@{nth} was never reached: {lines[-3:]}"
    _, cls, code = errors[0]
    assert code == str(errno.EIO if err == "eio" else errno.ENOSPC), errors[0]
    assert cls in ("OSError", "FileNotFoundError") or cls.endswith("Error")
    after = [x for x in lines if x[0] == "after"]
    assert after and after[0][1] == "WALPoisonedError", lines[-3:]
    assert not [x for x in lines if x[0] == "ack" and lines.index(x) > lines.index(errors[0])]
    check_recovered(d, acked(lines))


@pytest.mark.parametrize(
    ("site", "nth"), [*IO_SITES, ("write_before", 4), ("create_before_rename", 1)]
)
def test_killed_at_site_loses_nothing(tmp_path: Path, site: str, nth: int) -> None:
    d = tmp_path / "data"
    rc, lines = run_child(d, f"{site}=kill@{nth}", "async")
    assert rc == -9, (rc, lines[-3:])
    if site == "create_before_rename":
        assert acked(lines) == 0 and not (d / "wal").exists()
    check_recovered(d, acked(lines))


@pytest.mark.parametrize("nth", [3, 9, 17, 30])
def test_torn_write_then_kill(tmp_path: Path, nth: int) -> None:
    d = tmp_path / "data"
    rc, lines = run_child(d, f"write_before=tear@{nth}")
    assert rc == -9
    check_recovered(d, acked(lines))


@pytest.mark.parametrize(
    "site", ["preallocate", "create_before_rename", "write_before", "fsync_before"]
)
def test_create_fails_cleanly(tmp_path: Path, site: str) -> None:
    d = tmp_path / "data"
    rc, lines = run_child(d, f"{site}=enospc@1")
    assert rc == 0
    assert lines[0][0] == "error" and lines[0][2] == str(errno.ENOSPC), lines
    # nothing half-made is left where the WAL would be, and a retry works
    assert not (d / "wal").exists() and not (d / "wal.tmp").exists()
    check_recovered(d, 0)


def test_disk_full_at_segment_creation_then_more_space(tmp_path: Path) -> None:
    """The spare segment cannot be preallocated: the cut fails early and
    cleanly, the log stays readable, and a reopen (with space) continues."""
    d = tmp_path / "data"
    rc, lines = run_child(d, "preallocate=enospc@2")
    assert rc == 0
    assert next(x for x in lines if x[0] == "error")[2] == str(errno.ENOSPC)
    raftwal.verify(d / "wal")
    check_recovered(d, acked(lines))


_IN_FLIGHT_CHILD = r"""
import json, sys, time
import raftwal
from raftwal import Entry, HardState

w = raftwal.WAL.create(sys.argv[1])
futs, refused = [], None
for i in range(1, 301):
    try:
        futs.append(w.save_async(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"x" * 200)]))
    except (raftwal.Error, OSError) as exc:
        refused = type(exc).__name__  # the WAL is poisoned by then
        break
    if i % 10 == 0:
        time.sleep(0.002)  # fsyncs keep coming: one every wave at least
out = []
for f in futs:
    exc = f.exception(timeout=60)
    out.append("ok" if exc is None else f"{type(exc).__name__}:{getattr(exc, 'errno', None)}")
if refused:
    out.append("refused:" + refused)
try:
    w.close()
except (raftwal.Error, OSError):
    pass
print(json.dumps(out))
"""


@pytest.mark.parametrize("nth", [4, 7, 15])
def test_a_failed_fsync_reaches_every_future_it_was_to_cover(tmp_path: Path, nth: int) -> None:
    """300 save_async in flight and the nth fsync fails with EIO: in call
    order, the futures resolve (durable before it), then each one that fsync
    was to cover raises its OSError with errno EIO, whichever thread ran
    it, then the later ones raise WALPoisonedError."""
    r = subprocess.run(
        [sys.executable, "-c", _IN_FLIGHT_CHILD, str(tmp_path / "wal")],
        env=child_env(RAFTWAL_FAILPOINTS=f"fsync_before=eio@{nth}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    eio = f"OSError:{errno.EIO}"
    kinds = [k for i, k in enumerate(out) if i == 0 or out[i - 1] != k]
    order = ["ok", eio, "WALPoisonedError:None", "refused:WALPoisonedError"]
    assert set(out) <= set(order), sorted(set(out))
    assert "ok" in kinds and eio in kinds, kinds
    assert kinds == [k for k in order if k in kinds], kinds
