"""The programs in examples/ run and check what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(example), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_sqlite_example_restores_its_backend_from_a_snapshot(tmp_path: Path) -> None:
    example = next(p for p in EXAMPLES if p.name == "sqlite_backend.py")
    out = subprocess.run(
        [sys.executable, str(example), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "backend restored from" in out
    assert "restored 120 keys; applied 120" in out
