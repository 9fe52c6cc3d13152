"""The fleet commands as users run them: help, one-line errors, and `taxview nightly` on the
embedded default (its own redis-server, or fakeredis when none is installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer.cli import main


def test_every_fleet_command_has_help(capsys) -> None:
    for command in (
        ["nightly"],
        ["enqueue"],
        ["aggregate"],
        ["sweep"],
        ["preflight"],
        ["bench", "fleet"],
    ):
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0
    assert "--synthetic-accounts" in capsys.readouterr().out


def test_a_missing_book_is_one_line_exit_2(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    rc = main(["nightly", "--book", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no book directory" in err


def test_fleet_commands_without_a_broker_say_what_to_set(capsys, monkeypatch) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    rc = main(["aggregate", "--date", "2025-06-02", "--out", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "TAXVIEW_BROKER_URL" in err and "Traceback" not in err


def _nightly(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXVIEW_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "producer",
            "nightly",
            "--synthetic-accounts",
            "6",
            "--names",
            "15",
            "--date",
            "2025-06-02",
            "--concurrency",
            "2",
            "--out",
            str(tmp_path / "night"),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("server", ["redis-server", "fakeredis"])
def test_nightly_runs_on_the_embedded_default(tmp_path: Path, server: str) -> None:
    result = _nightly(tmp_path, "--embedded-server", server)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "night"
    firm = json.loads((out / "firm_pnl.json").read_text())
    assert firm["complete"] and firm["received"] == 6
    for name in ("trades.csv", "not_ok.csv", "outcomes.jsonl", "pnl_by_household.csv"):
        assert (out / name).exists(), name
    assert (out / "next_book" / "lots.csv").exists() and (out / "book" / "market.json").exists()
    assert "outputs:" in result.stdout and f"embedded {server}" in result.stderr
