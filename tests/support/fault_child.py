"""Child process for the fault tests: runs a workload against the
failpoints build and reports, one line per event, on stdout:

    ack <index>           entries up to <index> are acknowledged durable
    error <class> <errno> the first failure, as the caller saw it
    after <class>         what the next save raised (poisoning)
    done                  the workload finished without a failure
"""

from __future__ import annotations

import sys

import raftwal
from raftwal import Entry, HardState


def payload(i: int) -> bytes:
    return (b"%d:" % i) * (1 + i % 13)


def main() -> None:
    data_dir, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    assert raftwal._native.FAILPOINTS, "not the failpoints build"
    out = sys.stdout
    try:
        s = raftwal.open(data_dir, segment_size=4096, snapshot_count=25, catch_up_entries=5)
    except (raftwal.Error, OSError) as exc:
        print("error", type(exc).__name__, getattr(exc, "errno", None), flush=True)
        return
    last = s.last_index()
    try:
        i = last
        while i < last + count:
            i += 1
            hs = HardState(1, 1, i - 1)
            if mode == "async" and i % 2:
                s.save_async(hs, [Entry(term=1, index=i, data=payload(i))]).result()
            else:
                s.save(hs, [Entry(term=1, index=i, data=payload(i))])
            out.write(f"ack {i}\n")
            out.flush()
            # a snapshot covers committed entries only: the HardState commits i - 1
            if s.needs_snapshot(i - 1):
                s.create_snapshot(i - 1, raftwal.ConfState(voters=[1]), b"through %d" % (i - 1))
    except (raftwal.Error, OSError) as exc:
        print("error", type(exc).__name__, getattr(exc, "errno", None), flush=True)
        try:
            s.save(HardState(1, 1, i), [Entry(term=1, index=i + 1, data=b"after")])
            print("after none", flush=True)
        except (raftwal.Error, OSError) as exc2:
            print("after", type(exc2).__name__, flush=True)
        try:
            s.close()
        except (raftwal.Error, OSError):
            pass
        return
    s.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
