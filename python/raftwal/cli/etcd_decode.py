"""Decode what etcd puts in the data of its raft entries (``raftwal dump --etcd``).

An etcd member's WAL holds three kinds of entry data:

* normal entries carrying an ``etcdserverpb.InternalRaftRequest``: a put, a
  delete range, a txn, a compaction, a lease grant/revoke/checkpoint, an
  alarm, an auth change, or (etcd 3.5) a cluster version / member attribute
  update;
* normal entries carrying a bare etcd v2 ``Request``: etcd 3.4 proposes the
  member attributes, the cluster version and its SYNC ticks this way;
* conf-change entries carrying ``raftpb.ConfChange`` (or ``ConfChangeV2``),
  and empty normal entries (the no-op a new leader appends).

etcd tells the first two apart by trying ``InternalRaftRequest`` first and
falling back to the v2 ``Request`` when that does not unmarshal. Its
unmarshaller (gogoproto) is stricter than the protobuf runtime in one way:
a known field with the wrong wire type is an error, not an unknown field.
:func:`decode_entry` applies the same rule before parsing, so it classifies
an entry as etcd does.

Passwords, hashed passwords and auth tokens are never shown: their values
are replaced by ``<redacted>``.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from ..errors import CorruptionError
from ..messages import (
    ConfChange,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    Entry,
    EntryType,
)
from ._etcd_descriptors import FILE_DESCRIPTOR_SET

__all__ = ["DecodedEntry", "decode_data", "decode_entry", "message_class"]

_PACKAGE = "raftwal.etcdserverpb"
_SECRETS = frozenset({"password", "hashed_password", "simple_token"})
_REDACTED = "<redacted>"
_SHOW = 64
"""Characters of a key or value shown in a summary before it is cut short."""


def _load_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for fd in descriptor_pb2.FileDescriptorSet.FromString(FILE_DESCRIPTOR_SET).file:
        pool.Add(fd)
    return pool


_POOL = _load_pool()


def message_class(name: str) -> Any:
    """The protobuf class of the etcd message ``name`` (``"PutRequest"``,
    ``"InternalRaftRequest"``, ``"Request"`` for v2, ...), e.g. to build
    entry data in tests."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


_InternalRaftRequest = message_class("InternalRaftRequest")
_V2Request = message_class("Request")


@dataclass
class DecodedEntry:
    """One entry as etcd reads it.

    ``kind`` names what the entry carries: the request field of an
    InternalRaftRequest (``put``, ``delete_range``, ``txn``, ``lease_grant``,
    ...), ``v2``, ``conf_change``, ``conf_change_v2``, ``noop`` (no data) or
    ``unknown`` (data etcd itself could not decode). ``summary`` is one line
    for people; ``request`` the decoded fields for machines."""

    index: int
    term: int
    type: str
    kind: str
    summary: str
    request: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "term": self.term,
            "type": self.type,
            "kind": self.kind,
            "summary": self.summary,
            "request": self.request,
        }


# --- etcd's (gogoproto's) acceptance rule ------------------------------------------------

_WIRE_OF_TYPE = {
    FieldDescriptor.TYPE_DOUBLE: 1,
    FieldDescriptor.TYPE_FIXED64: 1,
    FieldDescriptor.TYPE_SFIXED64: 1,
    FieldDescriptor.TYPE_FLOAT: 5,
    FieldDescriptor.TYPE_FIXED32: 5,
    FieldDescriptor.TYPE_SFIXED32: 5,
    FieldDescriptor.TYPE_STRING: 2,
    FieldDescriptor.TYPE_BYTES: 2,
    FieldDescriptor.TYPE_MESSAGE: 2,
}


def _repeated(fd: FieldDescriptor) -> bool:
    """protobuf >= 5.29 has ``is_repeated``; older runtimes only ``label``."""
    flag = getattr(fd, "is_repeated", None)
    if isinstance(flag, bool):
        return flag
    return bool(getattr(fd, "label", 0) == FieldDescriptor.LABEL_REPEATED)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); raises IndexError/ValueError when malformed."""
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint too long")


def _skip(data: bytes, pos: int, wire: int, number: int, depth: int) -> int:
    """Position after an unknown field's payload (groups included)."""
    if wire == 0:
        return _varint(data, pos)[1]
    if wire == 1:
        end = pos + 8
    elif wire == 5:
        end = pos + 4
    elif wire == 2:
        n, pos = _varint(data, pos)
        end = pos + n
    elif wire == 3:
        if depth > 64:
            raise ValueError("groups nested too deep")
        while True:
            key, pos = _varint(data, pos)
            if key & 7 == 4:
                if key >> 3 != number:
                    raise ValueError("mismatched end of group")
                return pos
            if key >> 3 == 0:
                raise ValueError("field number 0")
            pos = _skip(data, pos, key & 7, key >> 3, depth + 1)
    else:
        raise ValueError(f"wire type {wire}")
    if end > len(data):
        raise ValueError("truncated")
    return end


def _accepts(desc: Descriptor, data: bytes, depth: int = 0) -> bool:
    """Would etcd's generated Unmarshal accept ``data`` as ``desc``? Every
    known field must have its own wire type (packed or not, for repeated
    scalars), embedded messages must themselves be accepted, and unknown
    fields are skipped."""
    if depth > 64:
        return False
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            number, wire = key >> 3, key & 7
            if number == 0 or wire in (4, 6, 7):
                return False
            fd = desc.fields_by_number.get(number)
            if fd is None:
                pos = _skip(data, pos, wire, number, 0)
                continue
            want = _WIRE_OF_TYPE.get(fd.type, 0)
            packed = _repeated(fd) and want != 2 and wire == 2
            if wire != want and not packed:
                return False
            end = _skip(data, pos, wire, number, 0)
            if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type is not None:
                _, start = _varint(data, pos)  # past the length
                if not _accepts(fd.message_type, data[start:end], depth + 1):
                    return False
            pos = end
    except (IndexError, ValueError):
        return False
    return True


def _parse(cls: Any, data: bytes) -> Any | None:
    if not _accepts(cls.DESCRIPTOR, data):
        return None
    try:
        return cls.FromString(data)
    except DecodeError:
        return None


# --- rendering -----------------------------------------------------------------------------


def _text(b: bytes) -> str | None:
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return s if s.isprintable() else None


def _q(b: bytes | str) -> str:
    """A key or value for people: a JSON string when it is printable UTF-8,
    hex otherwise; long ones cut short with their length."""
    raw = b.encode() if isinstance(b, str) else b
    s = _text(raw)
    if s is None:
        shown = "0x" + raw[: _SHOW // 2].hex()
        return shown + (f"...({len(raw)} bytes)" if len(raw) > _SHOW // 2 else "")
    if len(s) > _SHOW:
        return json.dumps(s[:_SHOW]) + f"...({len(raw)} bytes)"
    return json.dumps(s)


def _id(v: int) -> str:
    """A member ID as etcd prints it: hex."""
    return f"{v & 0xFFFFFFFFFFFFFFFF:x}"


def _lease(v: int) -> str:
    """A lease ID as etcdctl prints it: 16 hex digits."""
    return f"{v & 0xFFFFFFFFFFFFFFFF:016x}"


def _json_value(fd: FieldDescriptor, v: Any) -> Any:
    if fd.name in _SECRETS:
        return _REDACTED
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return _to_json(v)
    if fd.type == FieldDescriptor.TYPE_ENUM and fd.enum_type is not None:
        ev = fd.enum_type.values_by_number.get(v)
        return ev.name if ev is not None else v
    if isinstance(v, bytes):
        s = _text(v)
        return s if s is not None else {"hex": v.hex()}
    if isinstance(v, int) and not isinstance(v, bool):
        # 64-bit IDs as hex strings, as etcd prints them (a JSON number
        # above 2**53 is rounded by most readers)
        if fd.name == "lease":
            return _lease(v)
        if fd.name == "id" or fd.name.endswith("_id"):
            return _id(v)
    return v


def _to_json(msg: Any) -> dict[str, Any]:
    """The fields set in ``msg``, JSON-ready: bytes as text (or ``{"hex": ...}``),
    enums by name, secrets redacted."""
    out: dict[str, Any] = {}
    for fd, v in msg.ListFields():
        if _repeated(fd):
            out[fd.name] = [_json_value(fd, x) for x in v]
        else:
            out[fd.name] = _json_value(fd, v)
    return out


def _flags(msg: Any, *names: str) -> str:
    return "".join(f" {n}=true" for n in names if getattr(msg, n))


def _range(msg: Any) -> str:
    s = f"key={_q(msg.key)}"
    if msg.range_end:
        s += f" range_end={_q(msg.range_end)}"
    return s


def _put(p: Any) -> str:
    lease = _lease(p.lease) if p.lease else "0"
    return f"put key={_q(p.key)} value={_q(p.value)} lease={lease}" + _flags(
        p, "prev_kv", "ignore_value", "ignore_lease"
    )


def _delete(d: Any) -> str:
    return "delete_range " + _range(d) + _flags(d, "prev_kv")


def _get(r: Any) -> str:
    s = "range " + _range(r)
    for name in ("limit", "revision"):
        if getattr(r, name):
            s += f" {name}={getattr(r, name)}"
    return s + _flags(r, "serializable", "keys_only", "count_only")


_CMP = {"EQUAL": "=", "GREATER": ">", "LESS": "<", "NOT_EQUAL": "!="}


def _enum_name(msg: Any, field_name: str) -> str:
    """An enum field's value by name; a value etcd does not define (a newer
    etcd, or damage the CRC cannot see) as its number, never an error."""
    fd = msg.DESCRIPTOR.fields_by_name[field_name]
    v = getattr(msg, field_name)
    ev = fd.enum_type.values_by_number.get(v) if fd.enum_type is not None else None
    return ev.name if ev is not None else str(v)


def _compare(c: Any) -> str:
    target = _enum_name(c, "target")
    result = _enum_name(c, "result")
    which = c.WhichOneof("target_union")
    if which == "value":
        operand = _q(c.value)
    elif which == "lease":
        operand = _lease(c.lease)
    elif which is not None:
        operand = str(getattr(c, which))
    else:
        operand = '""' if target == "VALUE" else "0"
    key = _q(c.key) + (f"..{_q(c.range_end)}" if c.range_end else "")
    return f"{target.lower()}({key}) {_CMP.get(result, result)} {operand}"


def _op(op: Any) -> str:
    which = op.WhichOneof("request")
    if which == "request_put":
        return _put(op.request_put)
    if which == "request_delete_range":
        return _delete(op.request_delete_range)
    if which == "request_range":
        return _get(op.request_range)
    if which == "request_txn":
        return _txn(op.request_txn)
    return "empty"


def _txn(t: Any) -> str:
    return (
        "txn compare=["
        + ", ".join(_compare(c) for c in t.compare)
        + "] success=["
        + "; ".join(_op(o) for o in t.success)
        + "] failure=["
        + "; ".join(_op(o) for o in t.failure)
        + "]"
    )


def _v2(r: Any) -> str:
    method = r.method.decode("utf-8", "replace")
    s = f"v2 method={method or '(none)'}"
    if method == "SYNC":
        try:
            t = datetime.datetime.fromtimestamp(r.time / 1e9, tz=datetime.UTC)
        except (OverflowError, OSError, ValueError):
            return s + f" time={r.time}"  # not a time any clock gives
        return s + f" time={t.isoformat().replace('+00:00', 'Z')}"
    if r.HasField("path"):
        s += f" path={_q(r.path)}"
    if method not in ("QGET", "GET", "DELETE") and r.HasField("val"):
        s += f" val={_q(r.val)}"
    return s


def _generic(kind: str, msg: Any) -> str:
    """``kind name=value ...`` for the small requests (auth, cluster)."""
    parts = [kind]
    for fd, v in msg.ListFields():
        if fd.name in _SECRETS:
            parts.append(f"{fd.name}={_REDACTED}")
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            inner = _to_json(v)
            parts.extend(f"{k}={json.dumps(x)}" for k, x in inner.items())
        elif fd.type == FieldDescriptor.TYPE_ENUM:
            parts.append(f"{fd.name}={_json_value(fd, v)}")
        elif _repeated(fd):
            parts.append(f"{fd.name}={json.dumps([_json_value(fd, x) for x in v])}")
        elif isinstance(v, bytes | str):
            parts.append(f"{fd.name}={_q(v)}")
        elif fd.name.endswith("member_id"):
            parts.append(f"{fd.name}={_id(v)}")
        else:
            parts.append(f"{fd.name}={json.dumps(v)}")
    return " ".join(parts)


def _internal(rr: Any) -> tuple[str, str]:
    """(kind, summary) of an InternalRaftRequest."""
    kinds = [fd.name for fd, _ in rr.ListFields() if fd.name not in ("header", "id")]
    if not kinds:
        return "empty", "empty InternalRaftRequest"
    kind = kinds[0]
    msg = getattr(rr, kind)
    if kind == "put":
        return kind, _put(msg)
    if kind == "delete_range":
        return kind, _delete(msg)
    if kind == "range":
        return kind, _get(msg)
    if kind == "txn":
        return kind, _txn(msg)
    if kind == "v2":
        return kind, _v2(msg)
    if kind == "compaction":
        return kind, f"compaction revision={msg.revision} physical={str(msg.physical).lower()}"
    if kind == "lease_grant":
        return kind, f"lease_grant ttl={msg.ttl} id={_lease(msg.id)}"
    if kind == "lease_revoke":
        return kind, f"lease_revoke id={_lease(msg.id)}"
    if kind == "lease_checkpoint":
        cps = ", ".join(
            f"id={_lease(c.id)} remaining_ttl={c.remaining_ttl}" for c in msg.checkpoints
        )
        return kind, f"lease_checkpoint [{cps}]"
    if kind == "alarm":
        return kind, (
            f"alarm action={_json_value(msg.DESCRIPTOR.fields_by_name['action'], msg.action)} "
            f"member={_id(msg.member_id)} "
            f"alarm={_json_value(msg.DESCRIPTOR.fields_by_name['alarm'], msg.alarm)}"
        )
    if kind == "auth_role_grant_permission":
        perm = msg.perm
        ptype = _json_value(perm.DESCRIPTOR.fields_by_name["perm_type"], perm.perm_type)
        return kind, f"{kind} name={_q(msg.name)} perm={ptype} " + _range(perm)
    if kind == "cluster_member_attr_set":
        a = msg.member_attributes
        return kind, (
            f"{kind} member={_id(msg.member_id)} name={_q(a.name)} "
            f"client_urls={json.dumps(list(a.client_urls))}"
        )
    return kind, _generic(kind, msg)


def _conf_change_type(t: int) -> str:
    try:
        return ConfChangeType(t).name.removeprefix("ConfChange")
    except ValueError:
        return str(t)


def _member_context(ctx: bytes | None) -> str:
    """etcd puts the member (JSON) in a conf change's context."""
    if not ctx:
        return ""
    try:
        m = json.loads(ctx)
    except ValueError:
        return f" context={_q(ctx)}"
    if not isinstance(m, dict):
        return f" context={_q(ctx)}"
    s = ""
    if m.get("name"):
        s += f" name={json.dumps(m['name'])}"
    if m.get("peerURLs"):
        s += f" peer_urls={json.dumps(m['peerURLs'])}"
    if m.get("isLearner"):
        s += " learner=true"
    return s


def decode_data(entry_type: int, data: bytes | None) -> tuple[str, str, dict[str, Any]]:
    """(kind, summary, request) of one entry's data; see :class:`DecodedEntry`."""
    data = data or b""
    if entry_type == EntryType.EntryConfChange:
        try:
            cc = ConfChange.FromString(data)
        except CorruptionError:
            return "unknown", f"undecodable conf change {_q(data)}", {"hex": data.hex()}
        req: dict[str, Any] = {
            "id": _id(cc.id),
            "type": _conf_change_type(cc.type),
            "node_id": _id(cc.node_id),
        }
        ctx = cc.context or b""
        if ctx:
            s = _text(ctx)
            req["context"] = s if s is not None else {"hex": ctx.hex()}
        summary = f"conf_change {_conf_change_type(cc.type)} node={_id(cc.node_id)}"
        return "conf_change", summary + _member_context(ctx), req
    if entry_type == EntryType.EntryConfChangeV2:
        try:
            cc2 = ConfChangeV2.FromString(data)
        except CorruptionError:
            return "unknown", f"undecodable conf change v2 {_q(data)}", {"hex": data.hex()}
        changes = [f"{_conf_change_type(c.type)} node={_id(c.node_id)}" for c in cc2.changes]
        try:
            transition = ConfChangeTransition(cc2.transition).name.removeprefix(
                "ConfChangeTransition"
            )
        except ValueError:
            transition = str(cc2.transition)
        req = {"transition": transition, "changes": changes}
        summary = f"conf_change_v2 transition={transition} changes=[{', '.join(changes)}]"
        return "conf_change_v2", summary + _member_context(cc2.context), req
    if entry_type != EntryType.EntryNormal:
        return "unknown", f"entry type {entry_type}", {"hex": data.hex()}
    if not data:
        return "noop", "noop", {}
    rr = _parse(_InternalRaftRequest, data)
    if rr is not None:
        kind, summary = _internal(rr)
        return kind, summary, _to_json(rr)
    v2 = _parse(_V2Request, data)
    if v2 is not None:
        return "v2", _v2(v2), _to_json(v2)
    return "unknown", f"unknown data={_q(data)}", {"hex": data.hex()}


def decode_entry(entry: Entry) -> DecodedEntry:
    """Decode one etcd raft entry as etcd (and etcd-dump-logs) would."""
    kind, summary, request = decode_data(int(entry.type), entry.data)
    try:
        type_name = EntryType(entry.type).name
    except ValueError:
        type_name = str(int(entry.type))
    return DecodedEntry(
        index=entry.index,
        term=entry.term,
        type=type_name,
        kind=kind,
        summary=summary,
        request=request,
    )
