"""A raft loop over raftwal: a three-node PySyncObj cluster on 127.0.0.1
whose nodes keep their raft logs in raftwal (etcd's WAL format).

    python examples/pysyncobj_counter.py [DATA_DIR]

Three nodes replicate a counter; a hundred increments go through the
leader, each acknowledged once a majority has it durably in its raftwal
journal. The nodes are stopped and started again from their data
directories: the counter comes back from the journals, and the raft log
of any node can be read with raftwal (or etcd's tools) like any etcd WAL.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, replicated  # type: ignore[import-untyped, import-not-found, unused-ignore]

from raftwal.cli.ports import free_ports
from raftwal.integrations.pysyncobj import journal_commands, syncobj_options

INCREMENTS = 100


class Counter(SyncObj):  # type: ignore[misc]
    def __init__(self, me: str, others: list[str], data_dir: Path) -> None:
        super().__init__(me, others, **syncobj_options(data_dir, dynamicMembershipChange=False))
        self.value = 0

    @replicated  # type: ignore[untyped-decorator, unused-ignore]
    def add(self, n: int) -> int:
        self.value += n
        return self.value


def wait_for(cond: Any, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.05)


def start(addrs: list[str], root: Path) -> list[Counter]:
    nodes = [
        Counter(a, [o for o in addrs if o != a], root / f"node{i}") for i, a in enumerate(addrs)
    ]
    wait_for(lambda: any(n._isLeader() for n in nodes), "a leader")
    return nodes


def stop(nodes: list[Counter]) -> None:
    for n in nodes:
        n.destroy()
    time.sleep(0.5)


def main(root: Path) -> None:
    addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
    nodes = start(addrs, root)
    leader = next(n for n in nodes if n._isLeader())
    for _ in range(INCREMENTS):
        leader.add(1, sync=True, timeout=10)
    wait_for(lambda: all(n.value == INCREMENTS for n in nodes), "every node applied")
    print(f"counter {nodes[0].value} on every node")
    stop(nodes)

    calls = journal_commands(root / "node0")
    print(f"node0's raftwal journal holds {len(calls)} replicated calls")
    assert len(calls) == INCREMENTS

    nodes = start(addrs, root)
    try:
        wait_for(lambda: all(n.value == INCREMENTS for n in nodes), "the counter restored")
        print(f"after a restart: counter {nodes[0].value} on every node")
    finally:
        stop(nodes)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
