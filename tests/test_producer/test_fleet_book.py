"""Book directories round-trip in CSV and Parquet, and bad rows name the account and column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest

from producer.book import (
    CompressedLedgers,
    book_from_pairs,
    book_from_stream,
    read_book,
    write_book,
)
from shared import results_keys as keys
from shared.errors import InputError
from shared.examples import synthetic_book, synthetic_book_stream
from shared.messages import encode_json

DAY = dt.date(2025, 6, 2)


@pytest.fixture(scope="module")
def book():
    market, pairs = synthetic_book(accounts=7, names=15, seed=5, as_of=DAY)
    return book_from_pairs(market.as_of, pairs)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_written_book_reads_back_equal(tmp_path: Path, book, fmt: str) -> None:
    write_book(tmp_path, book, fmt=fmt)  # type: ignore[arg-type]
    back = read_book(tmp_path)
    assert back.as_of == book.as_of
    assert sorted(back.accounts, key=lambda a: a.account_id) == sorted(
        book.accounts, key=lambda a: a.account_id
    )
    assert set(back.ledgers) == set(book.ledgers)
    for household, state in book.ledgers.items():
        got = back.ledgers[household]
        key = lambda lot: (lot.account, lot.lot_id)  # noqa: E731
        assert sorted(got.lots, key=key) == sorted(state.lots, key=key)
        assert sorted(got.pending_losses, key=lambda p: p.txn) == sorted(
            state.pending_losses, key=lambda p: p.txn
        )
        assert sorted(got.recent_purchases, key=lambda r: r.txn) == sorted(
            state.recent_purchases, key=lambda r: r.txn
        )


def test_accounts_of_one_household_share_one_merged_ledger(book) -> None:
    households = book.households()
    assert sum(len(v) for v in households.values()) == 7
    for household, specs in households.items():
        accounts_in_ledger = {lot.account for lot in book.ledgers[household].lots}
        assert {s.account_id for s in specs if s.account_type == "taxable"} <= accounts_in_ledger


def test_a_bad_number_in_the_accounts_file_names_the_account_and_column(
    tmp_path: Path, book
) -> None:
    write_book(tmp_path, book)
    text = (tmp_path / "accounts.csv").read_text().splitlines()
    header = text[0].split(",")
    row = text[1].split(",")
    row[header.index("te_budget")] = "wide"
    (tmp_path / "accounts.csv").write_text("\n".join([text[0], ",".join(row), *text[2:]]) + "\n")
    with pytest.raises(InputError) as err:
        read_book(tmp_path)
    assert err.value.account == row[0] and err.value.field == "te_budget"


def test_a_missing_book_file_is_named(tmp_path: Path, book) -> None:
    write_book(tmp_path, book)
    (tmp_path / "lots.csv").unlink()
    with pytest.raises(InputError, match="lots"):
        read_book(tmp_path)


def test_a_streamed_synthetic_book_equals_the_materialised_one_with_compressed_ledgers() -> None:
    as_of = dt.date(2025, 6, 2)
    market, pairs = synthetic_book(accounts=25, names=30, seed=4, as_of=as_of)
    streamed_market, stream = synthetic_book_stream(accounts=25, names=30, seed=4, as_of=as_of)
    assert encode_json(streamed_market) == encode_json(market)
    whole = book_from_pairs(market.as_of, pairs)
    book = book_from_stream(market.as_of, stream)
    assert isinstance(book.ledgers, CompressedLedgers)
    assert "no such household" not in book.ledgers
    assert [a.account_id for a in book.accounts] == [a.account_id for a in whole.accounts]
    assert sorted(book.ledgers) == sorted(whole.ledgers)
    for household, state in whole.ledgers.items():
        assert encode_json(book.ledgers[household]) == encode_json(state)
        assert book.ledgers.raw(household) == keys.encode_ledger(state)


def test_a_stream_that_returns_to_an_earlier_household_is_refused_naming_the_account() -> None:
    _, pairs = synthetic_book(accounts=12, names=20, seed=5, as_of=dt.date(2025, 6, 2))
    first, other = pairs[0], next(p for p in pairs if p[0].household_id != pairs[0][0].household_id)
    back = (msgspec.structs.replace(first[0], account_id="A-again"), first[1])
    with pytest.raises(InputError) as err:
        book_from_stream(first[1].as_of, [first, other, back])
    assert err.value.account == "A-again"
    assert err.value.field == "household_id"
