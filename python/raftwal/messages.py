"""Message types stored in etcd's WAL and snapshot files.

Each class is a small value object whose bytes go through the protobuf
runtime (descriptors compiled from ``proto/*.proto``) and equal what etcd 3.4
marshals with gogoproto for the same values:

* scalars and embedded messages that etcd declares non-nullable are written
  even when zero (``Entry()`` is ``08 00 10 00 18 00``);
* a bytes field is written only when set: ``data=None`` is etcd's nil and
  writes nothing, ``data=b""`` is etcd's ``[]byte{}`` and writes an empty field.
  Reading ``data`` always gives ``bytes`` (``b""`` when absent), as in the
  protobuf runtime; ``HasField("data")`` tells the two apart.

Field names are etcd's in lower_snake_case; constructors take keywords.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, ClassVar, Self

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from ._descriptors import FILE_DESCRIPTOR_SET
from ._native import EntryBase
from .errors import CorruptionError

__all__ = [
    "ConfChange",
    "ConfChangeSingle",
    "ConfChangeTransition",
    "ConfChangeType",
    "ConfChangeV2",
    "ConfState",
    "Entry",
    "EntryConfChange",
    "EntryConfChangeV2",
    "EntryNormal",
    "EntryType",
    "HardState",
    "MemberMetadata",
    "Snapshot",
    "SnapshotMetadata",
    "WalSnapshot",
]


def _load_classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    fds = descriptor_pb2.FileDescriptorSet.FromString(FILE_DESCRIPTOR_SET)
    for fd in fds.file:
        pool.Add(fd)
    names = {
        "Entry": "raftwal.raftpb.Entry",
        "HardState": "raftwal.raftpb.HardState",
        "ConfState": "raftwal.raftpb.ConfState",
        "SnapshotMetadata": "raftwal.raftpb.SnapshotMetadata",
        "Snapshot": "raftwal.raftpb.Snapshot",
        "ConfChange": "raftwal.raftpb.ConfChange",
        "ConfChangeSingle": "raftwal.raftpb.ConfChangeSingle",
        "ConfChangeV2": "raftwal.raftpb.ConfChangeV2",
        "Record": "raftwal.walpb.Record",
        "WalSnapshot": "raftwal.walpb.Snapshot",
        "SnapFile": "raftwal.snappb.Snapshot",
        "Metadata": "raftwal.etcdserverpb.Metadata",
    }
    return {
        short: message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
        for short, full in names.items()
    }


_PB: dict[str, Any] = _load_classes()


class EntryType(enum.IntEnum):
    """raftpb.EntryType: what an entry's ``data`` holds. Compares equal to
    the ints 0, 1 and 2; :class:`Entry` refuses other values."""

    EntryNormal = 0
    EntryConfChange = 1
    EntryConfChangeV2 = 2


EntryNormal = EntryType.EntryNormal
EntryConfChange = EntryType.EntryConfChange
EntryConfChangeV2 = EntryType.EntryConfChangeV2


class ConfChangeType(enum.IntEnum):
    """raftpb.ConfChangeType."""

    ConfChangeAddNode = 0
    ConfChangeRemoveNode = 1
    ConfChangeUpdateNode = 2
    ConfChangeAddLearnerNode = 3


class ConfChangeTransition(enum.IntEnum):
    """raftpb.ConfChangeTransition."""

    ConfChangeTransitionAuto = 0
    ConfChangeTransitionJointImplicit = 1
    ConfChangeTransitionJointExplicit = 2


def _parse(name: str, data: bytes) -> Any:
    try:
        return _PB[name].FromString(data)
    except DecodeError as exc:
        raise CorruptionError(f"cannot decode {name}: {exc}") from exc


class _Value:
    """Equality and repr over the names in ``__slots__``; unhashable (the
    messages are mutable, as protobuf's are); pickled through their wire
    bytes, so every pickle protocol works and presence is kept."""

    __slots__ = ()
    _FIELDS: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, like protobuf messages

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"{type(self).__name__}({inner})"

    def _to_pb(self) -> Any:
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        cls: Any = type(self)  # every message type defines FromString
        return (cls.FromString, (self.SerializeToString(),))

    def SerializeToString(self) -> bytes:
        """The message's bytes, as etcd 3.4 marshals the same values."""
        out: bytes = self._to_pb().SerializeToString()
        return out

    def ByteSize(self) -> int:
        """Length of :meth:`SerializeToString`."""
        return len(self.SerializeToString())


class Entry(EntryBase, _Value):
    """raftpb.Entry: one log entry.

    ``Entry(term=0, index=0, type=EntryNormal, data=None)``. ``type`` reads
    as an :class:`EntryType`; a value outside 0-2 raises ``ValueError``.
    ``data`` reads as ``bytes`` (``b""`` when absent); ``data=None`` is
    etcd's nil (no field written), ``b""`` an empty field, and
    ``HasField("data")`` tells them apart. The fields live in the native
    base class, so reading a log builds entries without Python code.
    """

    __slots__ = ()
    _FIELDS = ("term", "index", "type", "data")

    def _values(self) -> tuple[Any, ...]:
        # presence is part of the value: Entry() and Entry(data=b"") encode differently
        return (self.term, self.index, int(self.type), self.data, self.HasField("data"))

    def __repr__(self) -> str:
        data = repr(self.data) if self.HasField("data") else "None"
        return (
            f"{type(self).__name__}(term={self.term!r}, index={self.index!r}, "
            f"type={self.type.name}, data={data})"
        )

    def __reduce__(self) -> tuple[type[Entry], tuple[int, int, int, bytes | None]]:
        data = self.data if self.HasField("data") else None
        return (type(self), (self.term, self.index, int(self.type), data))

    def _to_pb(self) -> Any:
        pb = _PB["Entry"](type=int(self.type), term=self.term, index=self.index)
        if self.HasField("data"):
            pb.data = self.data
        return pb

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        """Parse a raftpb.Entry's bytes (:class:`CorruptionError` if they do not decode)."""
        pb = _parse("Entry", data)
        return cls(
            term=pb.term,
            index=pb.index,
            type=pb.type,
            data=pb.data if pb.HasField("data") else None,
        )


class HardState(_Value):
    """raftpb.HardState: the term, the vote and the commit index."""

    __slots__ = ("commit", "term", "vote")
    _FIELDS = ("term", "vote", "commit")

    def __init__(self, term: int = 0, vote: int = 0, commit: int = 0) -> None:
        self.term = term
        self.vote = vote
        self.commit = commit

    def is_empty(self) -> bool:
        """etcd's ``raft.IsEmptyHardState``: all three are zero."""
        return self.term == 0 and self.vote == 0 and self.commit == 0

    def _to_pb(self) -> Any:
        return _PB["HardState"](term=self.term, vote=self.vote, commit=self.commit)

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        pb = _parse("HardState", data)
        return cls(term=pb.term, vote=pb.vote, commit=pb.commit)


class ConfState(_Value):
    """raftpb.ConfState: the voters and learners a snapshot carries."""

    __slots__ = ("auto_leave", "learners", "learners_next", "voters", "voters_outgoing")
    _FIELDS = ("voters", "learners", "voters_outgoing", "learners_next", "auto_leave")

    def __init__(
        self,
        voters: Iterable[int] = (),
        learners: Iterable[int] = (),
        voters_outgoing: Iterable[int] = (),
        learners_next: Iterable[int] = (),
        auto_leave: bool = False,
    ) -> None:
        self.voters = list(voters)
        self.learners = list(learners)
        self.voters_outgoing = list(voters_outgoing)
        self.learners_next = list(learners_next)
        self.auto_leave = bool(auto_leave)

    def _fill(self, pb: Any) -> None:
        pb.voters.extend(self.voters)
        pb.learners.extend(self.learners)
        pb.voters_outgoing.extend(self.voters_outgoing)
        pb.learners_next.extend(self.learners_next)
        pb.auto_leave = self.auto_leave

    def _to_pb(self) -> Any:
        pb = _PB["ConfState"]()
        self._fill(pb)
        return pb

    @classmethod
    def _from_pb(cls, pb: Any) -> Self:
        return cls(
            voters=pb.voters,
            learners=pb.learners,
            voters_outgoing=pb.voters_outgoing,
            learners_next=pb.learners_next,
            auto_leave=pb.auto_leave,
        )

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        return cls._from_pb(_parse("ConfState", data))


class SnapshotMetadata(_Value):
    """raftpb.SnapshotMetadata."""

    __slots__ = ("conf_state", "index", "term")
    _FIELDS = ("conf_state", "index", "term")

    def __init__(self, conf_state: ConfState | None = None, index: int = 0, term: int = 0) -> None:
        self.conf_state = conf_state if conf_state is not None else ConfState()
        self.index = index
        self.term = term

    def _fill(self, pb: Any) -> None:
        self.conf_state._fill(pb.conf_state)
        pb.index = self.index
        pb.term = self.term

    def _to_pb(self) -> Any:
        pb = _PB["SnapshotMetadata"]()
        self._fill(pb)
        return pb

    @classmethod
    def _from_pb(cls, pb: Any) -> Self:
        return cls(conf_state=ConfState._from_pb(pb.conf_state), index=pb.index, term=pb.term)

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        return cls._from_pb(_parse("SnapshotMetadata", data))


class Snapshot(_Value):
    """raftpb.Snapshot: application data plus the metadata it was taken at.

    ``data`` reads as ``bytes`` (``b""`` when absent); ``data=None`` writes
    no field, ``b""`` an empty one, and ``HasField("data")`` tells them
    apart.
    """

    __slots__ = ("_data", "metadata")
    _FIELDS = ("data", "metadata")

    def __init__(
        self,
        data: bytes | bytearray | memoryview | None = None,
        metadata: SnapshotMetadata | None = None,
    ) -> None:
        self.data = data
        self.metadata = metadata if metadata is not None else SnapshotMetadata()

    @property
    def data(self) -> bytes:
        """The application's snapshot, ``b""`` when absent."""
        d = self._data
        return d if d is not None else b""

    @data.setter
    def data(self, value: bytes | bytearray | memoryview | None) -> None:
        if value is None or isinstance(value, bytes):
            self._data = value
        elif isinstance(value, bytearray | memoryview):
            self._data = bytes(value)
        else:
            raise TypeError(
                "Snapshot.data must be bytes (or bytearray, memoryview, None), "
                f"not {type(value).__name__}"
            )

    def HasField(self, name: str) -> bool:
        """Whether field ``name`` is present: False for ``data`` when it was
        not set (no field is written), True for ``metadata``."""
        if name == "data":
            return self._data is not None
        if name == "metadata":
            return True
        raise ValueError(f"Snapshot has no field {name!r} (fields: data, metadata)")

    def ClearField(self, name: str) -> None:
        """Make ``data`` absent, or reset ``metadata`` to empty."""
        if name == "data":
            self._data = None
        elif name == "metadata":
            self.metadata = SnapshotMetadata()
        else:
            raise ValueError(f"Snapshot has no field {name!r} (fields: data, metadata)")

    def _values(self) -> tuple[Any, ...]:
        return (self._data is not None, self.data, self.metadata)

    def __repr__(self) -> str:
        data = repr(self._data) if self._data is not None else "None"
        return f"Snapshot(data={data}, metadata={self.metadata!r})"

    def is_empty(self) -> bool:
        """etcd's ``raft.IsEmptySnap``: the metadata index is zero."""
        return self.metadata.index == 0

    def _to_pb(self) -> Any:
        pb = _PB["Snapshot"]()
        if self._data is not None:
            pb.data = self._data
        self.metadata._fill(pb.metadata)
        return pb

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        pb = _parse("Snapshot", data)
        return cls(
            data=pb.data if pb.HasField("data") else None,
            metadata=SnapshotMetadata._from_pb(pb.metadata),
        )


class WalSnapshot(_Value):
    """walpb.Snapshot: the position of a snapshot, as the WAL records it.

    Without ``conf_state`` it is etcd 3.4's form (index and term only); with
    it, etcd 3.5's.
    """

    __slots__ = ("conf_state", "index", "term")
    _FIELDS = ("index", "term", "conf_state")

    def __init__(self, index: int = 0, term: int = 0, conf_state: ConfState | None = None) -> None:
        self.index = index
        self.term = term
        self.conf_state = conf_state

    def _to_pb(self) -> Any:
        pb = _PB["WalSnapshot"](index=self.index, term=self.term)
        if self.conf_state is not None:
            self.conf_state._fill(pb.conf_state)
        return pb

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        pb = _parse("WalSnapshot", data)
        cs = ConfState._from_pb(pb.conf_state) if pb.HasField("conf_state") else None
        return cls(index=pb.index, term=pb.term, conf_state=cs)


class ConfChange(_Value):
    """raftpb.ConfChange: the payload of an ``EntryConfChange`` entry."""

    __slots__ = ("context", "id", "node_id", "type")
    _FIELDS = ("id", "type", "node_id", "context")

    def __init__(
        self, id: int = 0, type: int = 0, node_id: int = 0, context: bytes | None = None
    ) -> None:
        self.id = id
        self.type = type
        self.node_id = node_id
        self.context = context

    def _to_pb(self) -> Any:
        pb = _PB["ConfChange"](id=self.id, type=int(self.type), node_id=self.node_id)
        if self.context is not None:
            pb.context = bytes(self.context)
        return pb

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        pb = _parse("ConfChange", data)
        ctx = pb.context if pb.HasField("context") else None
        return cls(id=pb.id, type=pb.type, node_id=pb.node_id, context=ctx)


class ConfChangeSingle(_Value):
    """raftpb.ConfChangeSingle: one change inside a ConfChangeV2."""

    __slots__ = ("node_id", "type")
    _FIELDS = ("type", "node_id")

    def __init__(self, type: int = 0, node_id: int = 0) -> None:
        self.type = type
        self.node_id = node_id

    def _to_pb(self) -> Any:
        return _PB["ConfChangeSingle"](type=int(self.type), node_id=self.node_id)

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        pb = _parse("ConfChangeSingle", data)
        return cls(type=pb.type, node_id=pb.node_id)


class ConfChangeV2(_Value):
    """raftpb.ConfChangeV2: the payload of an ``EntryConfChangeV2`` entry."""

    __slots__ = ("changes", "context", "transition")
    _FIELDS = ("transition", "changes", "context")

    def __init__(
        self,
        transition: int = 0,
        changes: Iterable[ConfChangeSingle] = (),
        context: bytes | None = None,
    ) -> None:
        self.transition = transition
        self.changes = list(changes)
        self.context = context

    def _to_pb(self) -> Any:
        pb = _PB["ConfChangeV2"](transition=int(self.transition))
        for c in self.changes:
            pb.changes.add(type=int(c.type), node_id=c.node_id)
        if self.context is not None:
            pb.context = bytes(self.context)
        return pb

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        pb = _parse("ConfChangeV2", data)
        return cls(
            transition=pb.transition,
            changes=[ConfChangeSingle(type=c.type, node_id=c.node_id) for c in pb.changes],
            context=pb.context if pb.HasField("context") else None,
        )


class MemberMetadata(_Value):
    """etcdserverpb.Metadata: what an etcd member stores as its WAL metadata."""

    __slots__ = ("cluster_id", "node_id")
    _FIELDS = ("node_id", "cluster_id")

    def __init__(self, node_id: int = 0, cluster_id: int = 0) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id

    def _to_pb(self) -> Any:
        return _PB["Metadata"](node_id=self.node_id, cluster_id=self.cluster_id)

    @classmethod
    def FromString(cls, data: bytes) -> Self:
        pb = _parse("Metadata", data)
        return cls(node_id=pb.node_id, cluster_id=pb.cluster_id)


def record_bytes(type: int, crc: int, data: bytes | None) -> bytes:
    """A walpb.Record's bytes (the body of one WAL frame), for tests and tools."""
    pb = _PB["Record"](type=type, crc=crc)
    if data is not None:
        pb.data = data
    out: bytes = pb.SerializeToString()
    return out


def snap_file_bytes(crc: int, data: bytes | None) -> bytes:
    """A snappb.Snapshot's bytes: the contents of a ``.snap`` file."""
    pb = _PB["SnapFile"](crc=crc)
    if data is not None:
        pb.data = data
    out: bytes = pb.SerializeToString()
    return out


def parse_snap_file(data: bytes) -> tuple[int, bytes | None]:
    """Split a ``.snap`` file's bytes into (crc, data); CorruptionError if they do not decode."""
    pb = _parse("SnapFile", data)
    return pb.crc, (pb.data if pb.HasField("data") else None)
