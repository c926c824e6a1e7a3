from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI sets RAFTWAL_HYPOTHESIS_PROFILE=ci for more examples; "dev" keeps local runs quick.
settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("RAFTWAL_HYPOTHESIS_PROFILE", "dev"))
