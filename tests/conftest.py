"""Suite-wide test settings.

Under CI (``CI`` set, as the CI runner does) Hypothesis draws its examples deterministically, so a
red CI is reproducible with ``CI=true pytest``; locally it keeps exploring new examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
