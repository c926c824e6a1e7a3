"""A local PySyncObj cluster journaling through raftwal: the node process
(``raftwal _pysyncobj-node``), the cluster that runs and kills them, and
the scenarios of ``raftwal demo --cluster`` and
``benches/pysyncobj_compare.py``. The journal itself is
:mod:`raftwal.integrations.pysyncobj`; this is the demo's side."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any

import pysyncobj  # type: ignore[import-untyped, import-not-found, unused-ignore]

from ..integrations.pysyncobj import journal_commands, syncobj_options
from .ports import free_ports

__all__ = [
    "JOURNALS",
    "Cluster",
    "cluster_demo",
    "kill_leader_scenario",
    "render_demo",
    "run_node",
    "throughput",
]


# --- a node process and a local cluster (the demo and the tests) --------------------------

JOURNALS = {
    "raftwal": "raftwal journal, group commit: fdatasync before any raft message leaves "
    "the node and before the leader applies",
    "raftwal-sync": "raftwal journal, one fdatasync per appended entry",
    "file": "PySyncObj FileJournal: mmap'd file, never fsynced (survives a process kill, "
    "not a power cut); term and vote renamed into place without fsync",
}


def _conf_kwargs(compaction_entries: int) -> dict[str, Any]:
    return {
        "appendEntriesPeriod": 0.01,
        "autoTickPeriod": 0.01,
        "raftMinTimeout": 0.4,
        "raftMaxTimeout": 0.8,
        "connectionTimeout": 2.0,
        "connectionRetryTime": 0.25,
        "logCompactionMinEntries": compaction_entries,
        "logCompactionMinTime": 1 << 30,
    }


def run_node(argv: Sequence[str]) -> int:
    """One PySyncObj node holding a replicated dict, driven by JSON lines on
    stdin (``status``, ``set``, ``get_all``, ``load``, ``stop``); each reply
    is one JSON line on stdout. Exits when stdin closes."""
    from pysyncobj import SyncObj, SyncObjConf, SyncObjException
    from pysyncobj.batteries import ReplDict  # type: ignore[import-untyped, import-not-found, unused-ignore]

    p = argparse.ArgumentParser(prog="raftwal _pysyncobj-node")
    p.add_argument("--self", dest="self_addr", required=True)
    p.add_argument("--peers", default="")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--journal", choices=sorted(JOURNALS), default="raftwal")
    p.add_argument("--compaction-entries", type=int, default=1 << 30)
    a = p.parse_args(list(argv))
    root = Path(a.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    conf = _conf_kwargs(a.compaction_entries)
    opts: dict[str, Any]
    if a.journal == "file":
        opts = {
            "conf": SyncObjConf(
                journalFile=str(root / "journal.bin"), fullDumpFile=str(root / "dump.bin"), **conf
            )
        }
    else:
        opts = syncobj_options(root, group_commit=a.journal == "raftwal", **conf)
    peers = [x for x in a.peers.split(",") if x]
    d = ReplDict()
    node = SyncObj(a.self_addr, peers, consumers=[d], **opts)
    node.waitBinded()
    out = sys.stdout

    def reply(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    reply({"event": "ready", "self": a.self_addr, "journal": a.journal})
    for line in sys.stdin:
        req = json.loads(line)
        op, rid = req.get("op"), req.get("id")
        res: dict[str, Any] = {"id": rid}
        try:
            if op == "status":
                st = node.getStatus()
                res.update(
                    self=a.self_addr,
                    leader=None if st["leader"] is None else str(st["leader"]),
                    is_leader=st["state"] == 2,
                    term=st["raft_term"],
                    commit=st["commit_idx"],
                    applied=st["last_applied"],
                    log_len=st["log_len"],
                    size=len(d.rawData()),
                )
            elif op == "set":
                d.set(req["key"], req["value"], sync=True, timeout=req.get("wait", 5.0))
                res["ok"] = True
            elif op == "get_all":
                res["data"] = d.rawData().copy()
            elif op == "load":
                res.update(_load(d, req["seconds"], req["in_flight"], req["size"], req["prefix"]))
            elif op == "stop":
                node.destroy_synchronous()
                reply(res | {"ok": True})
                return 0
            else:
                res["error"] = f"unknown op {op!r}"
        except SyncObjException as exc:
            res.update(ok=False, error=f"SyncObjException: {exc.errorCode}")
        reply(res)
    node.destroy_synchronous()
    return 0


def _load(d: Any, seconds: float, in_flight: int, size: int, prefix: str) -> dict[str, Any]:
    """Keep ``in_flight`` writes outstanding for ``seconds``; count the acknowledged."""
    slots = threading.Semaphore(in_flight)
    lock = threading.Lock()
    counts = {"acked": 0, "failed": 0}

    def done(_res: Any, err: Any) -> None:
        with lock:
            counts["acked" if err == 0 else "failed"] += 1
        slots.release()

    value = "x" * size
    sent = 0
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        if not slots.acquire(timeout=0.1):
            continue
        d.set(f"{prefix}{sent}", value, callback=done)
        sent += 1
    acked_in_time = counts["acked"]
    elapsed = time.monotonic() - t0
    for _ in range(in_flight):  # drain, bounded
        if not slots.acquire(timeout=5.0):
            break
    return {"sent": sent, "acked": acked_in_time, "failed": counts["failed"], "seconds": elapsed}


class NodeError(RuntimeError):
    pass


class _Node:
    def __init__(
        self, addr: str, peers: list[str], data_dir: Path, journal: str, compaction: int
    ) -> None:
        self.addr, self.peers, self.data_dir, self.journal = addr, peers, data_dir, journal
        self.compaction = compaction
        self.proc: subprocess.Popen[str] | None = None
        self._replies: Queue[dict[str, Any] | None] = Queue()
        self._next = 0
        self._log: IO[str] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.data_dir / "node.log", "a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "raftwal",
                "_pysyncobj-node",
                "--self",
                self.addr,
                "--peers",
                ",".join(self.peers),
                "--data-dir",
                str(self.data_dir),
                "--journal",
                self.journal,
                "--compaction-entries",
                str(self.compaction),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._replies = Queue()
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        first = self._get(timeout)
        if first.get("event") != "ready":
            raise NodeError(f"{self.addr}: unexpected first line {first}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                self._replies.put(json.loads(line))
        self._replies.put(None)

    def _get(self, timeout: float) -> dict[str, Any]:
        try:
            msg = self._replies.get(timeout=timeout)
        except Empty:
            raise NodeError(f"{self.addr}: no answer within {timeout:.0f} s") from None
        if msg is None:
            raise NodeError(f"{self.addr}: the node exited ({self.log_tail()})")
        return msg

    def call(self, op: str, timeout: float = 15.0, **kw: Any) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None or self.proc.stdin is None:
            raise NodeError(f"{self.addr}: not running")
        self._next += 1
        rid = self._next
        self.proc.stdin.write(json.dumps({"op": op, "id": rid, **kw}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            msg = self._get(max(0.01, deadline - time.monotonic()))
            if msg.get("id") == rid:
                return msg

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive:
            try:
                self.call("stop", timeout=timeout)
            except NodeError:
                pass
            assert self.proc is not None
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            for f in (self.proc.stdin, self.proc.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.data_dir / "node.log").read_text(errors="replace")
        except OSError:
            return "no log"
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """``n`` PySyncObj node processes on 127.0.0.1, each in ``root/nN``.
    Every wait is bounded; leaving the ``with`` block kills what still runs."""

    def __init__(
        self, root: Path, n: int = 3, journal: str = "raftwal", compaction: int = 1 << 30
    ) -> None:
        """``compaction``: PySyncObj's ``logCompactionMinEntries`` (by default
        it never compacts)."""
        ports = free_ports(n)
        addrs = [f"127.0.0.1:{p}" for p in ports]
        self.nodes = [
            _Node(a, [b for b in addrs if b != a], root / f"n{i + 1}", journal, compaction)
            for i, a in enumerate(addrs)
        ]

    def __enter__(self) -> Cluster:
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.kill_all()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()

    def kill_all(self) -> None:
        for node in self.nodes:
            node.kill()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, addr: str) -> _Node:
        return next(n for n in self.nodes if n.addr == addr)

    def wait_leader(self, timeout: float = 20.0, exclude: str | None = None) -> _Node:
        """The leader every running node agrees on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.alive]
            try:
                st = [n.call("status", timeout=5) for n in live]
            except NodeError:
                time.sleep(0.1)
                continue
            leaders = {s["leader"] for s in st}
            if len(leaders) == 1 and None not in leaders:
                (leader,) = leaders
                if leader != exclude and any(s["is_leader"] and s["self"] == leader for s in st):
                    return self.node(leader)
            time.sleep(0.1)
        raise NodeError(f"no leader agreed on within {timeout:.0f} s")

    def write(self, via: _Node, key: str, value: str, timeout: float = 3.0) -> bool:
        """One replicated write through ``via``; True once acknowledged."""
        try:
            reply = via.call("set", timeout=timeout + 10, key=key, value=value, wait=timeout)
            return bool(reply.get("ok"))
        except NodeError:
            return False

    def wait_converged(self, want: dict[str, str], timeout: float = 30.0) -> list[dict[str, str]]:
        """Wait until every running node holds ``want`` and all hold the same
        data; returns each node's data."""
        deadline = time.monotonic() + timeout
        datas: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            datas = [n.call("get_all", timeout=10)["data"] for n in self.nodes if n.alive]
            has_all = all(all(d.get(k) == v for k, v in want.items()) for d in datas)
            if has_all and all(d == datas[0] for d in datas):
                return datas
            time.sleep(0.1)
        missing = [sum(1 for k in want if d.get(k) != want[k]) for d in datas]
        raise NodeError(f"not converged within {timeout:.0f} s; missing per node: {missing}")


@contextlib.contextmanager
def _workdir(data_dir: str | None, keep: bool) -> Iterator[Path]:
    import tempfile

    own = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="raftwal-cluster-")) if own else Path(str(data_dir))
    try:
        yield path
    finally:
        if own and not keep:
            shutil.rmtree(path, ignore_errors=True)


def kill_leader_scenario(root: Path, n: int = 3, writes: int = 50) -> dict[str, Any]:
    """Commit writes, SIGKILL the leader, write more through the survivors,
    read the killed node's raftwal journal, restart it and wait until every
    node holds every acknowledged write. Returns the facts."""
    report: dict[str, Any] = {"nodes": n, "journal": "raftwal"}
    acked: dict[str, str] = {}
    with Cluster(root, n) as c:
        t0 = time.monotonic()
        leader = c.wait_leader()
        report["first_election_seconds"] = round(time.monotonic() - t0, 3)
        for i in range(writes):
            k, v = f"before-{i}", f"value-{i}"
            if c.write(leader, k, v):
                acked[k] = v
        before = dict(acked)
        report["acked_before_kill"] = len(before)
        leader.kill()
        report["killed"] = leader.addr
        t0 = time.monotonic()
        survivors = [x for x in c.nodes if x.alive]
        failed = 0
        deadline = time.monotonic() + 30
        first_ack: float | None = None
        for i in range(writes):
            k, v = f"after-{i}", f"value-{i}"
            while time.monotonic() < deadline:
                via = survivors[(i + failed) % len(survivors)]
                if c.write(via, k, v, timeout=2.0):
                    acked[k] = v
                    first_ack = first_ack or time.monotonic()
                    break
                failed += 1
        new_leader = c.wait_leader(exclude=leader.addr)
        report["new_leader"] = new_leader.addr
        report["failover_seconds"] = round((first_ack or time.monotonic()) - t0, 3)
        report["failed_attempts_during_failover"] = failed
        report["acked_after_kill"] = len(acked) - len(before)
        # What the killed leader had made durable, read straight from its journal.
        found = {
            args[0]
            for _, cmd in journal_commands(leader.data_dir)
            if isinstance(cmd, tuple) and len(cmd) >= 2
            for args in [cmd[1]]
            if args
        }
        report["killed_leader_journal_missing"] = sorted(set(before) - found)
        t0 = time.monotonic()
        leader.start()
        datas = c.wait_converged(acked)
        report["catch_up_seconds"] = round(time.monotonic() - t0, 3)
        report["acked"] = len(acked)
        report["lost"] = sorted(k for k in acked if any(d.get(k) != acked[k] for d in datas))
        report["node_sizes"] = [len(d) for d in datas]
        c.stop_all()
    return report


def throughput(
    root: Path, journal: str, seconds: float, in_flight: int = 64, size: int = 100, n: int = 3
) -> dict[str, Any]:
    """Acknowledged writes per second through the leader of a fresh cluster."""
    with Cluster(root, n, journal) as c:
        leader = c.wait_leader()
        r = leader.call(
            "load",
            timeout=seconds + 30,
            seconds=seconds,
            in_flight=in_flight,
            size=size,
            prefix="w",
        )
        c.stop_all()
    rate = r["acked"] / r["seconds"] if r["seconds"] > 0 else 0.0
    return {
        "journal": journal,
        "how_it_syncs": JOURNALS[journal],
        "writes_per_second": round(rate, 1),
        "acked": r["acked"],
        "seconds": round(r["seconds"], 3),
        "in_flight": in_flight,
        "value_bytes": size,
    }


def cluster_demo(
    n: int,
    *,
    seconds: float,
    data_dir: str | None,
    keep: bool,
    compare: bool = True,
    in_flight: int = 256,
) -> dict[str, Any]:
    """``raftwal demo --cluster N``: the kill-the-leader scenario, then a
    throughput comparison with PySyncObj's own FileJournal."""
    with _workdir(data_dir, keep) as root:
        report = kill_leader_scenario(root / "scenario", n)
        report["data_dir"] = str(root)
        report["pysyncobj_version"] = getattr(pysyncobj, "__version__", None) or _version()
        if compare:
            report["throughput"] = [
                throughput(root / f"bench-{j}", j, seconds, in_flight, n=n)
                for j in ("raftwal", "file")
            ]
    return report


def _version() -> str:
    try:
        from pysyncobj.version import VERSION  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover
        return "unknown"
    return str(VERSION)


def render_demo(r: dict[str, Any]) -> str:
    lines = [
        f"raftwal demo --cluster {r['nodes']}: PySyncObj {r['pysyncobj_version']} nodes on "
        f"127.0.0.1, each keeping its raft log, term and vote in raftwal (group commit)",
        f"  leader elected in {r['first_election_seconds']:.1f} s; "
        f"{r['acked_before_kill']} writes acknowledged",
        f"  leader {r['killed']} killed with SIGKILL; first write acknowledged again after "
        f"{r['failover_seconds']:.1f} s (new leader {r['new_leader']}); "
        f"{r['acked_after_kill']} more writes acknowledged "
        f"({r['failed_attempts_during_failover']} attempt(s) timed out during the election)",
        "  the killed leader's raftwal journal, read after the kill: "
        + (
            "every write it acknowledged is there"
            if not r["killed_leader_journal_missing"]
            else f"MISSING {len(r['killed_leader_journal_missing'])} acknowledged writes"
        ),
        f"  restarted: caught up in {r['catch_up_seconds']:.1f} s; nodes hold "
        f"{r['node_sizes']} keys",
        f"  acknowledged writes lost: {len(r['lost'])}"
        + ("  (none)" if not r["lost"] else f"  {r['lost'][:5]}"),
    ]
    if r.get("throughput"):
        t0 = r["throughput"][0]
        lines.append(
            f"throughput, {r['nodes']} nodes, {t0['in_flight']} writes in flight through the "
            f"leader, {t0['seconds']:.1f} s each:"
        )
        for t in r["throughput"]:
            lines.append(
                f"  {t['journal']:<8} {t['writes_per_second']:>9,.0f} writes/s  {t['how_it_syncs']}"
            )
    return "\n".join(lines)
