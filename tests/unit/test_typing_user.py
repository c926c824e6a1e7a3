"""A user's program that touches every public name of ``raftwal`` type-checks
under ``mypy --strict`` as written: no None checks for ``data``, no casts
for ``stats()``. It also runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import raftwal

PROGRAM = textwrap.dedent(
    '''
    """A small service's use of raftwal, typed as its author would write it."""

    from __future__ import annotations

    import asyncio
    import sys
    import tempfile
    from pathlib import Path

    import raftwal


    def payload_sizes(storage: raftwal.Storage) -> int:
        first, last = storage.first_index(), storage.last_index()
        # data is bytes: no None check
        return sum(len(e.data) for e in storage.entries(first, last + 1))


    def fsyncs(stats: raftwal.WALStats) -> int:
        return stats["wal_fsyncs_total"] + stats["wal_fsync_duration_seconds"]["count"]


    def latency(h: raftwal.HistogramValue) -> float:
        return h["sum"] / max(h["count"], 1)


    def snap_latency(stats: raftwal.DiskStorageStats) -> float:
        return latency(stats["snap_save_total_duration_seconds"])


    def kind(e: raftwal.Entry) -> str:
        t: raftwal.EntryType = e.type
        if t is raftwal.EntryNormal:
            return "normal"
        if t == raftwal.EntryConfChange:
            return raftwal.ConfChange.FromString(e.data).__class__.__name__
        assert t is raftwal.EntryConfChangeV2
        return raftwal.ConfChangeV2.FromString(e.data).__class__.__name__


    def errors() -> tuple[type[raftwal.Error], ...]:
        return (
            raftwal.CRCMismatchError,
            raftwal.CompactedError,
            raftwal.CorruptionError,
            raftwal.EmptySnapshotError,
            raftwal.EntryTooLargeError,
            raftwal.MetadataConflictError,
            raftwal.NoDBSnapshotError,
            raftwal.NoSnapshotError,
            raftwal.RecordTooLargeError,
            raftwal.SliceOutOfRangeError,
            raftwal.SnapOutOfDateError,
            raftwal.SnapshotMismatchError,
            raftwal.SnapshotNotFoundError,
            raftwal.SnapshotTemporarilyUnavailableError,
            raftwal.TornTailError,
            raftwal.UnavailableError,
            raftwal.UnknownRecordTypeError,
            raftwal.WALClosedError,
            raftwal.WALLockedError,
            raftwal.WALNotFoundError,
            raftwal.WALPoisonedError,
            raftwal.WALReadOnlyError,
        )


    def messages() -> list[bytes]:
        cs = raftwal.ConfState(voters=[1, 2, 3])
        cc = raftwal.ConfChange(
            id=1, type=raftwal.ConfChangeType.ConfChangeAddNode, node_id=4
        )
        cc2 = raftwal.ConfChangeV2(
            transition=raftwal.ConfChangeTransition.ConfChangeTransitionAuto,
            changes=[raftwal.ConfChangeSingle(type=0, node_id=5)],
        )
        md = raftwal.SnapshotMetadata(conf_state=cs, index=1, term=1)
        snap = raftwal.Snapshot(data=b"state", metadata=md)
        member = raftwal.MemberMetadata(node_id=1, cluster_id=2)
        return [
            cc.SerializeToString(),
            cc2.SerializeToString(),
            snap.SerializeToString(),
            member.SerializeToString(),
            raftwal.WalSnapshot(index=1, term=1).SerializeToString(),
        ]


    def durable_index(s: raftwal.DurableStorage) -> int:
        return s.durable_index


    def durable(root: Path, mode: raftwal.RecoveryMode) -> int:
        cc = raftwal.ConfChange(id=1, type=0, node_id=2).SerializeToString()
        entries = [
            raftwal.Entry(term=1, index=1, type=raftwal.EntryType.EntryConfChange, data=cc),
            raftwal.Entry(term=1, index=2),  # no data: reads as b""
            raftwal.Entry(term=1, index=3, data=b"x"),
        ]
        with raftwal.open(root, metadata=b"node-1", recovery=mode) as s:
            s.save(raftwal.HardState(term=1, vote=1, commit=3), entries)
            assert [kind(e) for e in s.entries(1, 4)] == ["ConfChange", "normal", "normal"]
            assert durable_index(s) == 3
            snap: raftwal.Snapshot = s.create_snapshot(3, raftwal.ConfState(voters=[1]), b"st")
            assert snap.data == b"st" and s.snapshot().data.startswith(b"s")
            stats: raftwal.DurableStorageStats = s.stats()
            assert stats["snapshots_total"] == 1 and stats["purged_files_total"] >= 0
            assert latency(stats["recovery_duration_seconds"]) >= 0.0
            assert fsyncs(stats) > 0 and snap_latency(stats) >= 0.0
            report: raftwal.RecoveryReport = s.recovery
            assert report.created
            ds: raftwal.DiskStorage = raftwal.DiskStorage(s.wal, s.snapshotter)
            assert ds.stats()["wal_saves_total"] >= 1
            return payload_sizes(s)


    def wal_level(root: Path) -> int:
        d = root / "wal"
        with raftwal.WAL.create(d, b"meta") as w:
            w.save(raftwal.HardState(term=1, commit=1), [raftwal.Entry(term=1, index=1)])
            w.save_snapshot(raftwal.WalSnapshot(index=1, term=1))
            ws: raftwal.WALStats = w.stats()
            assert ws["wal_entries_total"] == 1
        assert raftwal.wal_exists(d)
        hs: raftwal.HardState = raftwal.verify(d)
        ok: bool = raftwal.repair(d)  # True: the WAL reads to its end
        rep: raftwal.SalvageReport = raftwal.salvage(d)
        assert not rep.changed
        assert [s.index for s in raftwal.valid_snapshot_entries(d)] == [0, 1]
        with raftwal.WAL.open_for_read(d) as r:
            md, _, ents = r.read_all()
        assert md == b"meta" and ents[0].data == b"" and not ents[0].HasField("data")
        snaps = raftwal.Snapshotter(root / "snap")
        (root / "snap").mkdir()
        snaps.save_snap(raftwal.Snapshot(data=b"d", metadata=raftwal.SnapshotMetadata(index=1)))
        assert snaps.load().data == b"d"
        return hs.commit + raftwal.crc32c(b"abc") + ok


    def memory() -> int:
        m = raftwal.MemoryStorage()
        m.append([raftwal.Entry(term=1, index=1, data=b"abc")])
        storage: raftwal.Storage = m
        return payload_sizes(storage)


    async def service(root: Path) -> None:
        mod = raftwal.aio
        async with await mod.aopen(root) as s:
            hs = raftwal.HardState(term=1, vote=1, commit=1)
            await s.asave(hs, [raftwal.Entry(term=1, index=1, data=b"a")])
        with raftwal.WAL.create(root / "other") as w:
            async with w:
                await w.asave(raftwal.HardState(term=1), [raftwal.Entry(term=1, index=1)])


    def main() -> None:
        assert raftwal.__version__
        assert errors() and messages()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            assert durable(root / "a", "strict") == len(b"x")
            assert durable(root / "b", "tolerate-tail") == len(b"x")
            assert wal_level(root / "c") > 0
            assert memory() == 3
            asyncio.run(service(root / "d"))
        sys.stdout.write("ok\\n")


    if __name__ == "__main__":
        main()
    '''
)


def test_program_names_every_public_name() -> None:
    used = set(re.findall(r"raftwal\.(\w+)", PROGRAM)) | {"aio"}  # aio through `mod`
    missing = sorted(set(raftwal.__all__) - used)
    assert not missing, f"the user program does not use {missing}"


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("user") / "user_program.py"
    path.write_text(PROGRAM)
    return path


def test_program_type_checks_strict(program: Path) -> None:
    cache = program.parent / ".mypy_cache"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(program)],
        capture_output=True,
        text=True,
        cwd=program.parent,
        env={**os.environ, "MYPY_FORCE_COLOR": "0"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout
    assert "cast(" not in PROGRAM and "is None" not in PROGRAM


def test_program_runs(program: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "ok\n"


def _doc(obj: object) -> str:
    # a native signature line ("name(args)\n--\n\n") is not documentation
    text = getattr(obj, "__doc__", None) or ""
    return text.split("\n--\n", 1)[-1].strip()


def test_every_native_class_and_method_has_a_docstring() -> None:
    from raftwal import _native

    missing = []
    for name in _native.__all__:
        obj = getattr(_native, name)
        if not callable(obj):
            continue
        if not _doc(obj):
            missing.append(name)
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                if not attr.startswith("__") and not _doc(member):
                    missing.append(f"{name}.{attr}")
    assert not missing, f"native names without a docstring: {missing}"
    assert "present" in _doc(_native.EntryBase.HasField)
