"""The ``taxview realized`` CLI run in-process on a block of transaction rows, and its two CSV
reports read back with their exact headers (DESIGN.md §5) — shared by the hand-computed ledger
case files (loaded by path: tests are not a package)."""

from __future__ import annotations

import csv
from pathlib import Path

from producer.cli import main

TX_HEADER = "id,date,account,account_type,symbol,side,quantity,price,lot_id"
SALES_HEADER = [
    "txn",
    "date_sold",
    "account",
    "symbol",
    "lot_id",
    "quantity",
    "date_acquired",
    "term",
    "proceeds",
    "cost_basis",
    "adjustment_code",
    "disallowed_loss",
    "permanently_disallowed",
    "gain",
]
LOTS_HEADER = [
    "account",
    "symbol",
    "lot_id",
    "quantity",
    "trade_date",
    "acquired",
    "cost_basis",
    "wash_adjustment",
]


def rows(block: str) -> list[list[str]]:
    return [line.strip().split(",") for line in block.strip().splitlines() if line.strip()]


def run(tmp_path: Path, tx: str, *extra: str) -> tuple[int, Path, Path]:
    src = tmp_path / "tx.csv"
    src.write_text(TX_HEADER + "\n" + "\n".join(",".join(r) for r in rows(tx)) + "\n")
    sales, lots = tmp_path / "sales.csv", tmp_path / "lots.csv"
    rc = main(
        [
            "realized",
            "--transactions",
            str(src),
            "--sales-out",
            str(sales),
            "--lots-out",
            str(lots),
            *extra,
        ]
    )
    return rc, sales, lots


def read(path: Path, header: list[str]) -> list[list[str]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == header
    return rows[1:]
