"""SIGINT (KeyboardInterrupt) during save, save_async and create_snapshot:
every interrupted call ends with memory and disk in the same state (the old
one, or the new one with the KeyboardInterrupt raised after), so the
storage keeps working and a reopen finds exactly what memory served."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

CHILD = textwrap.dedent(
    """
    import json, os, random, signal, sys, threading, time
    import raftwal
    from raftwal import ConfState, Entry, HardState

    s = raftwal.open(sys.argv[1], segment_size=64 * 1024, max_wals=2, catch_up_entries=5)
    done, ack = threading.Event(), threading.Event()

    def pester():
        r = random.Random(int(sys.argv[2]))
        for _ in range(int(sys.argv[3])):
            time.sleep(r.uniform(0.00005, 0.003))
            ack.clear()
            os.kill(os.getpid(), signal.SIGINT)
            ack.wait(10)
        done.set()

    threading.Thread(target=pester, daemon=True).start()
    interrupts = refused = calls = 0
    while not done.is_set():
        try:
            calls += 1
            last = s.last_index()
            n = calls % 3
            if n == 0:
                s.save_async(HardState(term=1, vote=1, commit=last + 1),
                             [Entry(term=1, index=last + 1, data=b"x%d" % (last + 1))]).result()
            elif n == 1 or last < 2:
                s.save(HardState(term=1, vote=1, commit=last + 1),
                       [Entry(term=1, index=last + 1, data=b"x%d" % (last + 1))])
            elif s.snapshot().metadata.index < last - 1:
                s.create_snapshot(last - 1, ConfState(voters=[1]), b"state")
        except KeyboardInterrupt:
            interrupts += 1
            ack.set()
        except raftwal.Error as exc:
            refused += 1
            print("refused:", exc, file=sys.stderr)
            ack.set()
            break
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    hs = s.initial_state()[0]
    first, last = s.first_index(), s.last_index()
    ents = [(e.index, e.data) for e in s.entries(first, last + 1)]
    snap = s.snapshot().metadata.index
    s.close()
    with raftwal.open(sys.argv[1], recovery="strict", max_wals=2) as r:
        same = (
            r.initial_state()[0] == hs
            and r.last_index() == last
            and r.snapshot().metadata.index == snap
            # a restart starts from the snapshot: memory may hold less before it
            and [(e.index, e.data) for e in r.entries(r.first_index(), last + 1)]
            == [(i, d) for i, d in ents if i >= r.first_index()]
        )
    good = all(d == b"x%d" % i for i, d in ents)
    print(json.dumps({"interrupts": interrupts, "refused": refused, "calls": calls,
                      "last": last, "same_after_reopen": same, "data_ok": good}))
    """
)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigint_during_saves_and_snapshots_keeps_memory_and_disk_together(
    tmp_path: Path, seed: int
) -> None:
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "data"), str(seed), "300"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["interrupts"] == 300
    assert rep["refused"] == 0, r.stderr[-2000:]
    assert rep["same_after_reopen"] and rep["data_ok"], rep
    assert rep["last"] > 10


def test_a_save_puts_back_the_sigint_handler_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The save swaps SIGINT's handler for its own while it runs: after it,
    a handler the application installed (a function, SIG_IGN or SIG_DFL) is
    the one in place again, and a SIGINT caught meanwhile reaches it."""
    import signal

    import raftwal
    from raftwal import Entry, HardState
    from raftwal.disk import DiskStorage

    seen: list[int] = []

    def mine(signum: int, frame: object) -> None:
        seen.append(signum)

    before = signal.getsignal(signal.SIGINT)
    try:
        with raftwal.open(tmp_path / "data") as s:
            for i, handler in enumerate([mine, signal.SIG_IGN, signal.SIG_DFL, mine], start=1):
                signal.signal(signal.SIGINT, handler)
                s.save(HardState(term=1, vote=1, commit=i), [Entry(term=1, index=i)])
                assert signal.getsignal(signal.SIGINT) == handler
            # a SIGINT that arrives during a save is delivered to it after
            real = DiskStorage.save

            def interrupted(self: DiskStorage, *args: Any) -> None:
                signal.raise_signal(signal.SIGINT)
                assert seen == []  # held back until the save is complete
                real(self, *args)

            monkeypatch.setattr(DiskStorage, "save", interrupted)
            s.save(HardState(term=1, vote=1, commit=5), [Entry(term=1, index=5)])
            assert seen == [signal.SIGINT]
            assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, before)
