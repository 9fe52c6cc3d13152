"""The layering rules of DESIGN.md §4, enforced: a forbidden import fails the suite."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_SHARED = {"celery", "kombu", "redis", "worker", "producer", "fakeredis"}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_shared_imports_no_celery_kombu_redis_worker_or_producer() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & FORBIDDEN_IN_SHARED)
        for path in (ROOT / "shared").rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"shared/ must stay pure, found: {offenders}"


def test_the_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_uses_the_pickle_serializer() -> None:
    hits = [
        str(path.relative_to(ROOT))
        for pkg in ("shared", "worker", "producer")
        for path in (ROOT / pkg).rglob("*.py")
        if "pickle" in _imported_top_levels(path)
    ]
    assert hits == []
