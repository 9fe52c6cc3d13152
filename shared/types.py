"""Type aliases and the units convention.

Names carry their units: ``*_usd`` dollars (``Decimal`` where it is money that is reported,
``float`` inside the optimizer), ``*_shares`` shares, ``*_w`` weights as fractions of NAV.
"""

from __future__ import annotations

from typing import Literal, NewType

import numpy as np
import numpy.typing as npt

AccountId = NewType("AccountId", str)
HouseholdId = NewType("HouseholdId", str)
Symbol = NewType("Symbol", str)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Where an account's lots sit for tax purposes.  IRA and Roth lots are never reported, never
#: start a wash sale, but an IRA/Roth purchase can wash a taxable loss for good (Rev. Rul. 2008-5).
AccountType = Literal["taxable", "ira", "roth"]

#: Transaction sides. ``short`` opens a short lot, ``cover`` closes one (IRC §1233).
Side = Literal["buy", "sell", "short", "cover"]

#: Lot relief methods (Treas. Reg. §1.1012-1(c)).
LotMethod = Literal["fifo", "hifo", "specific"]

#: The three strategies of the product sheet.
Strategy = Literal["direct-index", "long-short", "market-neutral"]

#: Holding-period term of a realized slice (IRC §1222).
Term = Literal["short", "long"]
