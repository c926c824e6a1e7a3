"""Every message type pickles with every protocol and comes back equal,
byte for byte (presence of optional fields included)."""

from __future__ import annotations

import pickle

import pytest

import raftwal
from raftwal import messages


def _message_types() -> list[type[messages._Value]]:
    out: list[type[messages._Value]] = []
    todo = list(messages._Value.__subclasses__())
    while todo:
        t = todo.pop()
        out.append(t)
        todo.extend(t.__subclasses__())
    return sorted(out, key=lambda t: t.__name__)


SAMPLES = [
    raftwal.HardState(term=3, vote=2, commit=1),
    raftwal.ConfState(voters=[1, 2], learners=[3], voters_outgoing=[4], auto_leave=True),
    raftwal.Entry(term=1, index=2, data=b"x"),
    raftwal.Entry(term=1, index=2),
    raftwal.Entry(term=1, index=2, data=b""),
    raftwal.Snapshot(
        data=b"state",
        metadata=raftwal.SnapshotMetadata(
            index=3, term=2, conf_state=raftwal.ConfState(voters=[1])
        ),
    ),
    raftwal.WalSnapshot(index=1, term=2),
    raftwal.WalSnapshot(index=1, term=2, conf_state=raftwal.ConfState(voters=[2])),
]


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_message_type_pickles(proto: int) -> None:
    values = [t() for t in _message_types()] + SAMPLES
    assert len(_message_types()) >= 9
    for v in values:
        back = pickle.loads(pickle.dumps(v, protocol=proto))
        assert type(back) is type(v)
        assert back == v
        assert back.SerializeToString() == v.SerializeToString()
