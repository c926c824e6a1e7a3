"""Threads, processes, paths and event loops against one data directory.

Scenarios that can hang run in a child interpreter with a timeout, so a
deadlock fails the test instead of stopping the suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState, aio


def _run(script: str, *args: str, timeout: float = 240) -> Any:
    """Run `script` in a fresh interpreter; its last stdout line is JSON."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the scenario hung (no exit within {timeout} s): {exc.stderr!r}")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- paths -------------------------------------------------------------------


def test_a_non_utf8_data_directory_keeps_its_name(tmp_path: Path) -> None:
    """Paths travel as bytes: the WAL lands inside the directory that was
    named, and the directory reopens."""
    raw = os.fsencode(tmp_path) + b"/node\xff"
    node = os.fsdecode(raw)
    with raftwal.open(node, segment_size=4096) as s:
        for i in range(1, 41):
            s.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"x" * 200)])
        s.create_snapshot(20, ConfState(voters=[1]), b"state")
        assert os.fsencode(s.wal.dirpath) == raw + b"/wal"
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"node\xff"]
    assert sorted(os.listdir(raw)) == [b"snap", b"wal"]
    with raftwal.open(node, recovery="strict") as s:
        assert s.last_index() == 40
        assert s.snapshot().metadata.index == 20
    # The module-level helpers and WAL.create take the same paths.
    wal_dir = os.path.join(node, "wal")
    assert raftwal.wal_exists(wal_dir)
    assert raftwal.verify(wal_dir).commit == 39
    w2 = os.fsdecode(raw + b"/other\xfe\xff")
    with raftwal.WAL.create(Path(w2), b"m") as w:
        w.save(HardState(1, 1, 0), [Entry(term=1, index=1)])
    assert b"other\xfe\xff" in os.listdir(raw)
    assert not [n for n in os.listdir(raw) if n.endswith(b".tmp")]
    with raftwal.WAL.open_for_read(w2) as r:
        assert [e.index for e in r.read_all()[2]] == [1]
    with pytest.raises(FileExistsError):
        raftwal.WAL.create(w2)


def _tear_tail(wal_dir: bytes) -> None:
    """Append half a record behind the last one of the last segment."""
    seg = wal_dir + b"/" + sorted(os.listdir(wal_dir))[-1]
    with open(seg, "rb") as f:
        data = f.read()
    end = (len(data.rstrip(b"\0")) + 7) // 8 * 8
    with open(seg, "r+b") as f:
        f.seek(end)
        f.write((200).to_bytes(8, "little") + b"\x01" * 50)


def test_a_damaged_file_is_named_by_its_real_path(tmp_path: Path) -> None:
    """Messages may show a non-UTF-8 path lossily, but the ``path`` an
    error and a recovery report carry is the file itself."""
    raw = os.fsencode(tmp_path) + b"/n\xff\xfe"
    node = os.fsdecode(raw)
    with raftwal.open(node) as s:
        for i in range(1, 21):
            s.save(HardState(1, 1, i - 1), [Entry(term=1, index=i, data=b"x" * 100)])
    _tear_tail(raw + b"/wal")
    with pytest.raises(raftwal.TornTailError) as info:
        raftwal.open(node, recovery="strict")
    path = info.value.path  # type: ignore[attr-defined]
    assert isinstance(path, str)
    assert os.fsencode(path).startswith(raw + b"/wal/") and os.path.isfile(path)
    with raftwal.open(node) as s:
        assert s.recovery.repaired and s.recovery.damage is not None
        assert s.recovery.damage[0] == path
        assert s.last_index() == 20


# --- two creators ------------------------------------------------------------

_CREATE_RACE = r"""
import json, os, sys, time
import raftwal
from raftwal import Entry, HardState

base, trials = sys.argv[1], int(sys.argv[2])
SAVES = 4

def child(me, node, go_r, done_dir):
    os.read(go_r, 1)
    out = os.path.join(done_dir, str(me))
    try:
        s = raftwal.open(node, segment_size=8192)
    except raftwal.Error as exc:
        res = {"error": type(exc).__name__}
    except BaseException as exc:
        res = {"error": type(exc).__name__, "detail": str(exc)}
    else:
        acked = []
        try:
            for i in range(1, SAVES + 1):
                data = b"%d-%d" % (me, i) + b"." * 3000
                s.save(HardState(1, me, i - 1), [Entry(term=1, index=i, data=data)])
                acked.append(i)
        except BaseException as exc:
            res = {"acked": acked, "save_error": repr(exc)}
        else:
            res = {"acked": acked}
        # Stay open until the other creator has tried, so that it cannot
        # simply open a closed directory afterwards.
        other = os.path.join(done_dir, str(1 - me))
        t0 = time.monotonic()
        while not os.path.exists(other) and time.monotonic() - t0 < 60:
            time.sleep(0.002)
        s.close()
    with open(out + ".part", "w") as f:
        json.dump(res, f)
    os.rename(out + ".part", out)
    os._exit(0)

results = []
for t in range(trials):
    node = os.path.join(base, "t%d" % t, "node")
    done_dir = os.path.join(base, "done%d" % t)
    os.makedirs(done_dir)
    go_r, go_w = os.pipe()
    pids = []
    for me in (0, 1):
        pid = os.fork()
        if pid == 0:
            child(me, node, go_r, done_dir)
        pids.append(pid)
    os.write(go_w, b"gg")
    for pid in pids:
        os.waitpid(pid, 0)
    os.close(go_r)
    os.close(go_w)
    got = [json.load(open(os.path.join(done_dir, str(me)))) for me in (0, 1)]
    try:
        with raftwal.open(node, recovery="strict") as s:
            ents = s.entries(s.first_index(), s.last_index() + 1) if s.last_index() else []
            log = [(e.index, e.data[:8].split(b".")[0].decode()) for e in ents]
    except Exception as exc:
        log = "reopen failed: %r" % exc
    leftover = sorted(os.listdir(os.path.dirname(node + "/wal")))
    results.append({"children": got, "log": log, "node": leftover})
print(json.dumps(results))
"""


@pytest.mark.timeout(600)
def test_two_processes_creating_one_directory_lose_nothing(tmp_path: Path) -> None:
    trials = 50
    results = _run(_CREATE_RACE, str(tmp_path), str(trials), timeout=540)
    assert len(results) == trials
    for k, r in enumerate(results):
        children, log = r["children"], r["log"]
        assert isinstance(log, list), (k, r)
        assert r["node"] == ["snap", "wal"], (k, r)  # no temporary left behind
        winners = [me for me, c in enumerate(children) if c.get("acked")]
        assert len(winners) <= 1, (k, r)
        for me, c in enumerate(children):
            if me not in winners:
                assert c.get("error") == "WALLockedError", (k, r)
        # Whatever a creator acknowledged is in the directory, as written.
        for me in winners:
            want = [[i, f"{me}-{i}"] for i in children[me]["acked"]]
            assert log[: len(want)] == want, (k, r)
        assert len(winners) == 1, (k, r)


# --- fork ----------------------------------------------------------------------

_FORK = r"""
import asyncio, gc, json, os, sys
import raftwal
from raftwal import ConfState, Entry, HardState, aio

node = sys.argv[1]
s = raftwal.open(node, segment_size=8192)
def ent(i, who):
    return Entry(term=1, index=i, data=(who + str(i)).encode() * 100)
for i in range(1, 11):
    s.save(HardState(1, 1, i - 1), [ent(i, "p")])

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    seen = {}
    def attempt(name, f):
        try:
            f()
        except raftwal.Error as exc:
            seen[name] = "raftwal.Error:" + type(exc).__name__
        except BaseException as exc:
            seen[name] = "other:" + repr(exc)
        else:
            seen[name] = "ok"
    wal = s.wal
    attempt("storage.save", lambda: s.save(HardState(1, 1, 10), [ent(11, "c")]))
    attempt("wal.save", lambda: wal.save(HardState(1, 1, 10), [ent(11, "c")]))
    attempt("wal.save_async", lambda: wal.save_async(HardState(1, 1, 10), [ent(11, "c")]).result(10))
    attempt("storage.save_async", lambda: s.save_async(HardState(1, 1, 10), [ent(11, "c")]).result(10))
    attempt("wal.sync", wal.sync)
    attempt("wal.save_snapshot", lambda: wal.save_snapshot(raftwal.WalSnapshot(index=5, term=1)))
    attempt("create_snapshot", lambda: s.create_snapshot(5, ConfState(voters=[1]), b"child"))
    attempt("wal.asave", lambda: asyncio.run(wal.asave(HardState(1, 1, 10), [ent(11, "c")])))
    attempt("storage.asave", lambda: asyncio.run(s.asave(HardState(1, 1, 10), [ent(11, "c")])))
    attempt("aio.asave", lambda: asyncio.run(aio.asave(s, HardState(1, 1, 10), [ent(11, "c")])))
    attempt("close", s.close)
    # Nothing above started a thread (the parent's are not in this process).
    seen["threads"] = "raftwal.Error:" if len(os.listdir("/proc/self/task")) == 1 else "threads"
    os.write(w, json.dumps(seen).encode())
    os.close(w)
    # Leave the way a program does: the inherited objects are finalized.
    del s, wal
    gc.collect()
    sys.exit(0)
os.close(w)
child = b""
while True:
    b = os.read(r, 65536)
    if not b:
        break
    child += b
_, status = os.waitpid(pid, 0)
# The parent goes on writing (through cuts) after the child is gone.
for i in range(11, 61):
    s.save(HardState(1, 1, i - 1), [ent(i, "p")])
s.create_snapshot(30, ConfState(voters=[1]), b"parent")
s.close()
with raftwal.open(node, recovery="strict") as again:
    log = [e.data for e in again.entries(again.first_index(), again.last_index() + 1)]
    first, last = again.first_index(), again.last_index()
    snap = again.snapshot().data.decode()
print(json.dumps({"child": json.loads(child), "status": status, "first": first,
                  "last": last, "log_ok": log == [ent(i, "p").data for i in range(first, last + 1)],
                  "snap": snap, "snaps": sorted(os.listdir(os.path.join(node, "snap")))}))
"""


@pytest.mark.timeout(300)
def test_a_forked_child_cannot_write_through_the_parents_wal(tmp_path: Path) -> None:
    r = _run(_FORK, str(tmp_path / "node"), timeout=240)
    assert r["status"] == 0
    for name, outcome in r["child"].items():
        assert outcome.startswith("raftwal.Error:"), (name, outcome)
    assert r["last"] == 60 and r["log_ok"], r
    assert r["snap"] == "parent"
    # The child's refused snapshot left no file behind.
    assert len(r["snaps"]) == 1, r


_FORK_MID_SAVE = r"""
import json, os, sys, threading
import raftwal
from raftwal import Entry, HardState

w = raftwal.WAL.create(sys.argv[1], segment_size=16384)
stop = threading.Event()
n = [0]
def writer():
    while not stop.is_set():
        n[0] += 1
        w.save(HardState(1, 1, n[0] - 1), [Entry(term=1, index=n[0], data=b"p" * 500)])
t = threading.Thread(target=writer)
t.start()
outcomes = []
for k in range(20):
    r, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        # Forked while the writer thread saves (it may hold the WAL's lock):
        # every write is refused at once, and exiting touches nothing.
        seen = []
        for f in (lambda: w.save(HardState(1, 1, 0), [Entry(term=1, index=1, data=b"c")]),
                  lambda: w.save_async(HardState(1, 1, 0), []).result(5),
                  w.sync, w.close):
            try:
                f()
                seen.append("ok")
            except raftwal.Error as exc:
                seen.append(type(exc).__name__)
            except BaseException as exc:
                seen.append("other:" + repr(exc))
        os.write(wr, json.dumps(seen).encode())
        sys.exit(0)
    os.close(wr)
    got = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        got += b
    os.close(r)
    _, status = os.waitpid(pid, 0)
    outcomes.append({"status": status, "seen": json.loads(got)})
stop.set()
t.join()
last = n[0]
w.close()
with raftwal.WAL.open_for_read(sys.argv[1]) as r:
    ents = r.read_all()[2]
print(json.dumps({"outcomes": outcomes, "last": last,
                  "log": [e.index for e in ents] == list(range(1, last + 1)),
                  "data": all(e.data == b"p" * 500 for e in ents)}))
"""


@pytest.mark.timeout(300)
def test_a_child_forked_during_a_save_is_refused_without_waiting(tmp_path: Path) -> None:
    r = _run(_FORK_MID_SAVE, str(tmp_path / "wal"), timeout=240)
    for o in r["outcomes"]:
        assert o["status"] == 0, o
        assert o["seen"] == ["WALClosedError"] * 4, o
    assert r["last"] > 0 and r["log"] and r["data"], r


_FORK_UNDER_STORAGE_LOCK = r"""
import json, os, sys, threading, time
import raftwal
from raftwal import ConfState, Entry, HardState

s = raftwal.open(sys.argv[1])
s.save(HardState(1, 1, 1), [Entry(term=1, index=1, data=b"p")])
held, release = threading.Event(), threading.Event()
def holder():
    # a parent thread inside the storage (as a save or a snapshot is) at the fork
    with s._lock:
        held.set()
        release.wait()
t = threading.Thread(target=holder)
t.start()
held.wait()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    signal_after = __import__("signal")
    signal_after.alarm(20)  # a hang fails the test instead of blocking it
    seen = []
    for f in (
        lambda: s.save(HardState(1, 1, 2), [Entry(term=1, index=2, data=b"c")]),
        lambda: s.save_entries(HardState(1, 1, 2), 1, 2, [b"c"]),
        lambda: s.save_async(HardState(1, 1, 2), [Entry(term=1, index=2)]).result(5),
        lambda: s.create_snapshot(1, ConfState(voters=[1]), b"child"),
    ):
        try:
            f()
            seen.append("ok")
        except raftwal.Error as exc:
            seen.append(type(exc).__name__)
    os.write(w, json.dumps(seen).encode())
    os._exit(0)
os.close(w)
got = b""
while chunk := os.read(r, 4096):
    got += chunk
_, status = os.waitpid(pid, 0)
release.set()
t.join()
s.save(HardState(1, 1, 2), [Entry(term=1, index=2, data=b"p2")])
s.close()
print(json.dumps({"status": status, "seen": json.loads(got or b"[]")}))
"""


@pytest.mark.timeout(120)
def test_a_child_forked_while_a_parent_thread_holds_the_storage_is_refused(
    tmp_path: Path,
) -> None:
    """The fork check comes before the storage's locks: a child forked
    while another thread of the parent held one is refused at once."""
    r = _run(_FORK_UNDER_STORAGE_LOCK, str(tmp_path / "node"), timeout=90)
    assert r["status"] == 0, r
    assert r["seen"] == ["WALClosedError"] * 4, r


# --- locks and the GIL ---------------------------------------------------------

_GETTER_DURING_REPLAY = r"""
import json, sys, threading
import raftwal
from raftwal import Entry, HardState

path = sys.argv[1]
with raftwal.WAL.create(path) as w:
    for b in range(60):
        w.save(HardState(1, 1, 0), [Entry(term=1, index=b * 5000 + i, data=b"d")
                                    for i in range(1, 5001)])
w = raftwal.WAL.open(path)
stop = threading.Event()
reads = [0]
def getter():
    while not stop.is_set():
        w.durable_index
        repr(w)
        w.closed
        reads[0] += 1
threads = [threading.Thread(target=getter) for _ in range(2)]
for t in threads:
    t.start()
md, hs, ents = w.read_all()
stop.set()
for t in threads:
    t.join()
w.close()
print(json.dumps({"n": len(ents), "reads": reads[0]}))
"""


@pytest.mark.timeout(300)
def test_a_getter_on_another_thread_during_read_all_does_not_deadlock(tmp_path: Path) -> None:
    r = _run(_GETTER_DURING_REPLAY, str(tmp_path / "wal"), timeout=180)
    assert r["n"] == 300_000


_CONCURRENCY = r"""
import json, sys, threading, time, traceback
import raftwal
from raftwal import ConfState, Entry, HardState

base = sys.argv[1]
errors = []
stop = threading.Event()

def read_loop(name, fns):
    n = 0
    try:
        while not stop.is_set():
            for f in fns:
                f()
            n += 1
    except BaseException:
        errors.append(name + ": " + traceback.format_exc())
    counts[name] = n

counts = {}

def reader_threads(fns, k=3):
    ts = [threading.Thread(target=read_loop, args=("r%d" % i, fns)) for i in range(k)]
    for t in ts:
        t.start()
    return ts

def finish(ts):
    stop.set()
    for t in ts:
        t.join()
    stop.clear()

# 1. A WAL: replay of a big log, saves, async streams and cuts, close.
wal_dir = base + "/wal"
with raftwal.WAL.create(wal_dir, b"md", segment_size=1 << 20) as w:
    for b in range(40):
        w.save(HardState(1, 1, 0), [Entry(term=1, index=b * 5000 + i, data=b"v" * 8)
                                    for i in range(1, 5001)])
w = raftwal.WAL.open(wal_dir, segment_size=64 * 1024)
wal_props = [lambda: w.durable_index, lambda: w.closed, lambda: w.dirpath, lambda: repr(w),
             lambda: w.stats(), lambda: w.locked_segments()]
ts = reader_threads(wal_props)
md, hs, ents = w.read_all()
last = len(ents)
futs = []
for i in range(last + 1, last + 2001):
    e = [Entry(term=1, index=i, data=b"x" * 300)]
    if i % 3:
        futs.append(w.save_async(HardState(1, 1, i - 1), e))
    else:
        w.save(HardState(1, 1, i - 1), e)
for f in futs:
    f.result(60)
w.sync()
w.close()
finish(ts)
wal_cuts = w.stats()["wal_cuts_total"]

# 2. A DurableStorage: recovery, saves, async streams, cuts, snapshots, close.
node = base + "/node"
with raftwal.open(node, metadata=b"m", segment_size=64 * 1024) as s:
    for b in range(20):
        s.save(HardState(1, 1, 0), [Entry(term=1, index=b * 5000 + i, data=b"v" * 8)
                                    for i in range(1, 5001)])
holder = {}
def storage_props():
    s = holder.get("s")
    if s is None:
        return
    durable = s.durable_index
    last = s.last_index()
    # The log only grows here: what is durable is visible, read in this order.
    assert durable <= last, (durable, last)
    s.first_index(); s.metadata; s.stats()
    s.initial_state(); s.snapshot(); s.recovery; s.wal; s.snapshotter
    repr(s.wal); s.wal.durable_index; s.wal.closed; s.wal.dirpath; s.wal.stats()
    s.wal.locked_segments(); s.needs_snapshot(1)
ts = reader_threads([storage_props])
s = raftwal.open(node, segment_size=64 * 1024, max_wals=2, max_snapshots=2)
holder["s"] = s
n = s.last_index()
futs = []
for i in range(n + 1, n + 3001):
    e = [Entry(term=1, index=i, data=b"y" * 300)]
    if i % 2:
        futs.append(s.save_async(HardState(1, 1, i), e))
    else:
        s.save(HardState(1, 1, i), e)
    if i % 1000 == 0:
        for f in futs:
            f.result(60)
        futs = []
        s.create_snapshot(i, ConfState(voters=[1]), b"snap%d" % i)
for f in futs:
    f.result(60)
s.close()
last_saved = s.last_index()
finish(ts)
with raftwal.open(node, recovery="strict") as again:
    reopened = again.last_index()
print(json.dumps({"errors": errors, "counts": counts, "last": last, "wal_cuts": wal_cuts,
                  "storage_cuts": s.stats()["wal_cuts_total"], "last_saved": last_saved,
                  "reopened": reopened}))
"""


@pytest.mark.timeout(400)
def test_every_property_read_from_threads_during_writes_replay_and_close(tmp_path: Path) -> None:
    r = _run(_CONCURRENCY, str(tmp_path), timeout=300)
    assert r["errors"] == []
    assert r["last"] == 200_000
    assert r["wal_cuts"] > 0 and r["storage_cuts"] > 0
    assert r["reopened"] == r["last_saved"] == 103_000
    assert all(n > 0 for n in r["counts"].values()), r["counts"]


# --- asyncio --------------------------------------------------------------------


def test_close_drains_asaves_issued_before_it_and_refuses_later_ones(tmp_path: Path) -> None:
    async def main() -> None:
        w = raftwal.WAL.create(tmp_path / "w", segment_size=4096)
        tasks = [
            asyncio.ensure_future(w.asave(HardState(1, 1, i - 1), [Entry(term=1, index=i)]))
            for i in range(1, 51)
        ]
        await asyncio.sleep(0)  # every asave has been issued
        w.close()
        await asyncio.gather(*tasks)  # none fails: they were issued before close
        with pytest.raises(raftwal.WALClosedError):
            await w.asave(HardState(1, 1, 50), [Entry(term=1, index=51)])
        with pytest.raises(raftwal.WALClosedError):
            await aio.asave(w, HardState(1, 1, 50), [Entry(term=1, index=51)])

        s = raftwal.open(tmp_path / "d", segment_size=4096)
        tasks = [
            asyncio.ensure_future(s.asave(HardState(1, 1, i - 1), [Entry(term=1, index=i)]))
            for i in range(1, 51)
        ]
        await asyncio.sleep(0)
        s.close()
        await asyncio.gather(*tasks)
        with pytest.raises(raftwal.WALClosedError):
            await s.asave(HardState(1, 1, 50), [Entry(term=1, index=51)])
        with pytest.raises(raftwal.WALClosedError):
            await aio.asave(s, HardState(1, 1, 50), [Entry(term=1, index=51)])

    asyncio.run(main())
    with raftwal.WAL.open_for_read(tmp_path / "w") as r:
        assert [e.index for e in r.read_all()[2]] == list(range(1, 51))
    with raftwal.open(tmp_path / "d", recovery="strict") as s:
        assert s.last_index() == 50


class _SaveSpy:
    """Stands in for a WAL's native core and notes the thread of every save."""

    def __init__(self, native: Any, threads: set[int]) -> None:
        self._inner = native
        self._threads = threads

    def save(self, *args: Any) -> Any:
        self._threads.add(threading.get_ident())
        return self._inner.save(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_raftwal_aio_never_appends_on_the_event_loop_thread(tmp_path: Path) -> None:
    """A save may cut a segment (truncate, fsyncs, rename, directory sync):
    none of raftwal.aio's saves runs the native save on the loop's thread."""
    threads: set[int] = set()

    async def main() -> int:
        loop_thread = threading.get_ident()
        w = raftwal.WAL.create(tmp_path / "w", segment_size=2048)
        w._native = _SaveSpy(w._native, threads)  # type: ignore[assignment]
        s = raftwal.open(tmp_path / "d", segment_size=2048)
        s.wal._native = _SaveSpy(s.wal._native, threads)  # type: ignore[assignment]
        pending = []
        for i in range(1, 61):
            e = [Entry(term=1, index=i, data=b"z" * 1000)]
            pending.append(aio.submit(w, HardState(1, 1, i - 1), e))
            pending.append(aio.submit(s, HardState(1, 1, i - 1), e))
        await asyncio.gather(*pending)
        for i in range(61, 81):
            e = [Entry(term=1, index=i, data=b"z" * 1000)]
            await aio.asave(w, HardState(1, 1, i - 1), e)
            await aio.asave(s, HardState(1, 1, i - 1), e)
        cuts = w.stats()["wal_cuts_total"] + s.stats()["wal_cuts_total"]
        await aio.aclose(w)
        await aio.aclose(s)
        assert threads and loop_thread not in threads
        return cuts

    assert asyncio.run(main()) >= 4  # the saves did cut segments
    with raftwal.WAL.open_for_read(tmp_path / "w") as r:
        assert [e.index for e in r.read_all()[2]] == list(range(1, 81))
    with raftwal.open(tmp_path / "d", recovery="strict") as s:
        assert s.last_index() == 80
