"""The README's usage example runs as written, and what it leaves reopens
strictly, also when every run takes a snapshot and purges old segments."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import raftwal

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    block = re.search(r"## Using it\n\n```python\n(.*?)```", text, re.S)
    assert block, "README has no 'Using it' example"
    code = block.group(1)
    # the etcd part needs a real member directory
    return code.split("# An etcd member directory")[0]


@pytest.mark.parametrize("snapshot_every_run", [False, True])
def test_readme_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot_every_run: bool
) -> None:
    code = _example()
    if snapshot_every_run:
        code = code.replace(
            'metadata=b"node-1")', 'metadata=b"node-1", snapshot_count=0, max_wals=1)'
        )
        assert "snapshot_count=0" in code
    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        exec(compile(code, str(README), "exec"), {})
        with raftwal.open("data", recovery="strict") as s:
            assert s.last_index() >= 2
            hs, _ = s.initial_state()
            assert hs.commit == s.last_index()
    assert os.path.isdir("data/wal")
