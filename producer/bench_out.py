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
