"""A short, fixed run of the torture campaign (tests/torture.py; the long
run is `make torture`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.timeout(600)
def test_short_torture_campaign() -> None:
    r = subprocess.run(
        [
            sys.executable,
            str(HERE / "torture.py"),
            "--seed",
            "20261205",
            "--max-cases",
            "40",
            "--seconds",
            "400",
        ],
        capture_output=True,
        text=True,
        timeout=580,
    )
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["cases"] == 40, r.stderr[-3000:]
    assert summary["failures"] == 0, r.stderr[-6000:]
    assert r.returncode == 0
    # the campaign exercised both outcomes of a strict open and repairs
    assert summary["strict_refused"] > 0 and summary["repaired"] > 0
