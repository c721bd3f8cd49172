"""Test configuration: Hypothesis profiles and the shared fixtures (tests/support/fixtures.py).

Helpers are imported from `tests.support.*`, never from this file. Integration tests get a
fresh, uniquely named topic each and wait on the data itself, never on sleeps.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Hypothesis profiles. The default, `derandomized`, draws the same examples on every run
# and machine, so the README's `python -m pytest` (and CI) never fails at random;
# HYPOTHESIS_PROFILE=random draws new examples each run, for hunting bugs locally. Tests'
# own @settings (max_examples, ...) still apply on top. `ci` is the same as the default.
_PROFILE = {"deadline": None, "print_blob": True,
            "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("derandomized", derandomize=True, **_PROFILE)
settings.register_profile("ci", derandomize=True, **_PROFILE)
settings.register_profile("random", derandomize=False, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "derandomized")


from tests.support.fixtures import (  # noqa: F401, E402
    _kill_leftover_workers,
    own_broker,
    session_broker,
)
