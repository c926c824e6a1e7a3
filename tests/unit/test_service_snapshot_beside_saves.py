"""create_snapshot writes and fsyncs its .snap file beside the saves, not
under the storage's lock: saves (sync and async) complete while a large
snapshot is being written, and the result reopens strictly."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import raftwal
from raftwal import ConfState, Entry, HardState
from raftwal.snap import Snapshotter


def test_saves_go_on_while_the_snapshot_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing, release = threading.Event(), threading.Event()
    real = Snapshotter.save_snap

    def slow_save_snap(self: Snapshotter, snap: raftwal.Snapshot) -> None:
        writing.set()
        assert release.wait(60), "the test never released the snapshot write"
        real(self, snap)

    monkeypatch.setattr(Snapshotter, "save_snap", slow_save_snap)
    d = tmp_path / "data"
    with raftwal.open(d) as s:
        s.save(HardState(1, 1, 5), [Entry(term=1, index=i, data=b"a") for i in range(1, 6)])
        result: list[object] = []
        t = threading.Thread(
            target=lambda: result.append(s.create_snapshot(5, ConfState(voters=[1]), b"big"))
        )
        t.start()
        assert writing.wait(30)
        # the snapshot file is being written: saves still go through
        saver = threading.Thread(
            target=lambda: [
                s.save(HardState(1, 1, 6), [Entry(term=1, index=6, data=b"b")]),
                s.save_async(HardState(1, 1, 7), [Entry(term=1, index=7, data=b"c")]).result(30),
            ]
        )
        saver.start()
        saver.join(30)
        done_while_writing = not saver.is_alive()
        release.set()
        saver.join(30)
        t.join(30)
        assert done_while_writing, "a save waited for the snapshot file"
        assert s.last_index() == 7 and s.snapshot().metadata.index == 5 and result
    with raftwal.open(d, recovery="strict") as again:
        assert again.snapshot().metadata.index == 5 and again.last_index() == 7
        assert [e.data for e in again.entries(6, 8)] == [b"b", b"c"]
