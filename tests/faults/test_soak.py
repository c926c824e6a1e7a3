"""A short run of the soak test (tests/support/soak.py; the long run is `make soak`):
several storages with writers, snapshotters and readers, closed, dropped and
reopened, leave no descriptor, thread, temporary file or memory behind and
lose nothing acknowledged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "support"


@pytest.mark.timeout(300)
def test_short_soak() -> None:
    r = subprocess.run(
        [sys.executable, str(HERE / "soak.py"), "--seconds", "20", "--storages", "3"],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert r.stdout.strip(), r.stderr[-4000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["problems"] == [], r.stderr[-4000:]
    assert r.returncode == 0
    # it did exercise what it claims to
    assert report["reopens"] >= 5 and report["drops_without_close"] >= 1
    assert report["saves"] > 0 and report["snapshots"] > 0 and report["reads"] > 0
