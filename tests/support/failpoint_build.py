"""A test-only build of raftwal with the `failpoints` cargo feature, laid out
as an importable package for child processes (PYTHONPATH=<dir>)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "target" / "failpoints"
PKG = TARGET / "pkg"

_built: Path | None = None


def failpoint_pythonpath() -> Path:
    """Build (once per session, incrementally) and return the package dir."""
    global _built
    if _built is not None:
        return _built
    if shutil.which("cargo") is None:
        pytest.fail("cargo is needed to build raftwal with failpoints")
    r = subprocess.run(
        [
            "cargo",
            "build",
            "--locked",
            "--features",
            "python,failpoints",
            "--target-dir",
            str(TARGET),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode != 0:
        pytest.fail(f"cargo build --features failpoints failed:\n{r.stderr[-4000:]}")
    lib = TARGET / "debug" / "libraftwal.so"
    dest = PKG / "raftwal"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        REPO / "python" / "raftwal", dest, ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    shutil.copy2(lib, dest / "_native.abi3.so")
    _built = PKG
    return PKG


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(failpoint_pythonpath())
    env.update(extra)
    return env
