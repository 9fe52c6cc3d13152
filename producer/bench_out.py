"""How the scripts under ``bench/`` report: one JSON line on stdout, appended to their file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], path: Path) -> None:
    """Print ``result`` as one JSON line and append the line to ``path`` (the raw lines the
    README's speed rows are read from)."""
    line = json.dumps(result)
    print(line, flush=True)
    with path.open("a") as fh:
        fh.write(line + "\n")


def contract_keys(
    result: dict[str, Any], keys: tuple[str, ...], *, details: bool
) -> dict[str, Any]:
    """``result`` cut to the contract's ``keys`` in their order (all of it, contract keys first,
    with ``details``): a consumer of the documented line sees exactly the documented keys
    (contracts audit: ten more keys followed them)."""
    head = {k: result[k] for k in keys}
    return {**head, **result} if details else head
