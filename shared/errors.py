"""The one exception tree of taxview.

::

    TaxviewError
     ├── InputError (ValueError)          bad input: never retried; becomes a `rejected` outcome
     │    └── LedgerError                  a bad transaction row (names the row id and the field)
     └── OptimizationError
          ├── Infeasible                   constraints cannot all hold: the relaxation chain runs
          ├── Unbounded                    the model is missing a bound: a bug or bad input
          └── SolverFailed                 numerical trouble: re-solved with safe settings, then a
                                           fallback; retried with backoff at the task edge

Every message names the account (or row), the field, and what to do about it.  Third-party
errors are wrapped with ``raise ... from exc`` so the cause is never lost.
"""

from __future__ import annotations


class TaxviewError(Exception):
    """Root of every error taxview raises on purpose."""


class InputError(TaxviewError, ValueError):
    """Input that can never succeed as given: the account, the field and the fix are named.

    Args:
        message: what is wrong and what to do about it.
        account: the account (or household) the input belongs to, if known.
        field: the offending field, e.g. ``lots[3].quantity``.
    """

    def __init__(self, message: str, *, account: str | None = None, field: str | None = None):
        self.account = account
        self.field = field
        self.reason = message
        parts = []
        if account is not None:
            parts.append(f"account {account}")
        if field is not None:
            parts.append(f"field {field}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class LedgerError(InputError):
    """A transaction row the ledger cannot apply; names the row id and the field.

    Args:
        message: what is wrong and what to do about it.
        row: the transaction id (``id`` column) of the bad row.
        field: the offending column.
        account: the account of the row, if known.
    """

    def __init__(self, message: str, *, row: str, field: str, account: str | None = None) -> None:
        self.row = row
        TaxviewError.__init__(self, f"row {row}, field {field}: {message}")
        self.account = account
        self.field = field
        self.reason = message


class OptimizationError(TaxviewError):
    """The solve did not produce a trustworthy portfolio."""

    def __init__(self, message: str, *, account: str | None = None) -> None:
        self.account = account
        super().__init__(f"account {account}: {message}" if account else message)


class Infeasible(OptimizationError):
    """The constraints cannot all hold; relax the tilt, the TE budget, or hold."""


class Unbounded(OptimizationError):
    """The problem is unbounded: a missing bound, which is a bug or bad input."""


class SolverFailed(OptimizationError):
    """The solver stopped without a trustworthy answer (numerical trouble, time limit)."""
