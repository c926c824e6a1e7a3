from __future__ import annotations

import os
import sys
from pathlib import Path

# The helpers (tests/support/) are imported by name from every group.
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from hypothesis import HealthCheck, settings

# CI sets RAFTWAL_HYPOTHESIS_PROFILE=ci for more examples; "dev" keeps local runs quick.
settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("RAFTWAL_HYPOTHESIS_PROFILE", "dev"))
