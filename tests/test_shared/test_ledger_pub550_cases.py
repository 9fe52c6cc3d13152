"""Hand-computed ledger cases (IRS Pub. 550, IRC §1091, §1222, §1223(3), §1233, Rev. Rul. 2008-5,
Rev. Rul. 56-602, Rev. Rul. 66-7), run through the ``taxview realized`` CLI function in-process.

Every expected SALES.csv / LOTS.csv row is a literal worked out by hand from the rules and the
documented conventions of docs/ledger.md (``quantity × price`` rounded half-up to the cent;
a partial relief takes ``basis × sold / held``; a partial wash disallows ``loss × matched / sold``
rounded cumulatively; a replacement's ``acquired`` = its trade date − (date sold − acquired of
the sold shares)). Nothing here asks the ledger for an expected value.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "_realized_cli", Path(__file__).resolve().parents[1] / "_realized_cli.py"
)
assert _spec is not None and _spec.loader is not None
_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cli)
TX_HEADER, SALES_HEADER, LOTS_HEADER = _cli.TX_HEADER, _cli.SALES_HEADER, _cli.LOTS_HEADER
_rows, _run, _read = _cli.rows, _cli.run, _cli.read


# (transactions, extra CLI args, expected SALES rows in order, expected LOTS rows in any order)
CASES = [
    # ---- holding period: more than one year, counted from the day after (IRC §1222; Pub. 550
    # "Holding Period"; Rev. Rul. 66-7 for the last day of a month) -----------------------------
    pytest.param(
        """
        t1,2020-02-05,A,taxable,X,buy,2,10,L1
        t2,2021-02-05,A,taxable,X,sell,1,12,L1
        t3,2021-02-06,A,taxable,X,sell,1,12,L1
        """,
        (),
        """
        t2,2021-02-05,A,X,L1,1,2020-02-05,short,12.00,10.00,,0.00,0.00,2.00
        t3,2021-02-06,A,X,L1,1,2020-02-05,long,12.00,10.00,,0.00,0.00,2.00
        """,
        "",
        id="pub550 holding period: sold on the anniversary is short-term, the day after long-term",
    ),
    pytest.param(
        """
        t1,2024-02-29,A,taxable,X,buy,2,10,L1
        t2,2025-02-28,A,taxable,X,sell,1,11,L1
        t3,2025-03-01,A,taxable,X,sell,1,11,L1
        """,
        (),
        """
        t2,2025-02-28,A,X,L1,1,2024-02-29,short,11.00,10.00,,0.00,0.00,1.00
        t3,2025-03-01,A,X,L1,1,2024-02-29,long,11.00,10.00,,0.00,0.00,1.00
        """,
        "",
        id="a lot bought on a leap day is long-term from March 1 of the next year",
    ),
    pytest.param(
        """
        t1,2024-02-28,A,taxable,X,buy,2,10,L1
        t2,2025-02-28,A,taxable,X,sell,1,11,L1
        t3,2025-03-01,A,taxable,X,sell,1,11,L1
        """,
        (),
        """
        t2,2025-02-28,A,X,L1,1,2024-02-28,short,11.00,10.00,,0.00,0.00,1.00
        t3,2025-03-01,A,X,L1,1,2024-02-28,long,11.00,10.00,,0.00,0.00,1.00
        """,
        "",
        id="a lot bought the day before a leap day held exactly one year is short-term",
    ),
    pytest.param(
        """
        t1,2023-02-28,A,taxable,X,buy,2,10,L1
        t2,2024-02-29,A,taxable,X,sell,1,11,L1
        t3,2024-03-01,A,taxable,X,sell,1,11,L1
        """,
        (),
        """
        t2,2024-02-29,A,X,L1,1,2023-02-28,short,11.00,10.00,,0.00,0.00,1.00
        t3,2024-03-01,A,X,L1,1,2023-02-28,long,11.00,10.00,,0.00,0.00,1.00
        """,
        "",
        id="a lot bought on the last day of february is long-term from the first of the 13th month",
    ),
    pytest.param(
        """
        t1,2024-01-31,A,taxable,X,buy,2,10,L1
        t2,2025-01-31,A,taxable,X,sell,1,11,L1
        t3,2025-02-01,A,taxable,X,sell,1,11,L1
        """,
        (),
        """
        t2,2025-01-31,A,X,L1,1,2024-01-31,short,11.00,10.00,,0.00,0.00,1.00
        t3,2025-02-01,A,X,L1,1,2024-01-31,long,11.00,10.00,,0.00,0.00,1.00
        """,
        "",
        id="a lot bought on january 31 is long-term from february 1 of the next year",
    ),
    pytest.param(
        """
        t1,2023-03-01,A,taxable,X,buy,2,10,L1
        t2,2024-03-01,A,taxable,X,sell,1,9,L1
        t3,2024-03-02,A,taxable,X,sell,1,9,L1
        """,
        (),
        """
        t2,2024-03-01,A,X,L1,1,2023-03-01,short,9.00,10.00,,0.00,0.00,-1.00
        t3,2024-03-02,A,X,L1,1,2023-03-01,long,9.00,10.00,,0.00,0.00,-1.00
        """,
        "",
        id="a holding period across february 29 is still one calendar year",
    ),
    pytest.param(
        """
        t1,2023-01-03,A,taxable,X,buy,10,100,L1
        t2,2023-09-01,A,taxable,X,buy,10,100,L2
        t3,2024-01-03,A,taxable,X,sell,20,110,
        """,
        (),
        """
        t3,2024-01-03,A,X,L1,10,2023-01-03,short,1100.00,1000.00,,0.00,0.00,100.00
        t3,2024-01-03,A,X,L2,10,2023-09-01,short,1100.00,1000.00,,0.00,0.00,100.00
        """,
        "",
        id="one sell across two lots reports each slice with its own acquisition date",
    ),
    pytest.param(
        """
        t1,2022-06-01,A,taxable,X,buy,10,100,L1
        t2,2023-09-01,A,taxable,X,buy,10,100,L2
        t3,2024-01-03,A,taxable,X,sell,20,110,
        """,
        (),
        """
        t3,2024-01-03,A,X,L1,10,2022-06-01,long,1100.00,1000.00,,0.00,0.00,100.00
        t3,2024-01-03,A,X,L2,10,2023-09-01,short,1100.00,1000.00,,0.00,0.00,100.00
        """,
        "",
        id="one sell across an old and a new lot splits long-term and short-term",
    ),
    # ---- Pub. 550 "Wash Sales" examples and the 30-day window (IRC §1091(a)) -----------------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,M,buy,100,10,L1
        t2,2024-03-01,A,taxable,M,sell,100,7.50,L1
        t3,2024-03-11,A,taxable,M,buy,100,8,L2
        """,
        (),
        "t2,2024-03-01,A,M,L1,100,2024-01-02,short,750.00,1000.00,W,250.00,0.00,0.00",
        "A,M,L2,100,2024-03-11,2024-01-12,1050.00,250.00",
        id="pub550 example 1: the replacement's basis is 800 plus the disallowed 250",
    ),
    pytest.param(
        """
        t1,2024-09-24,A,taxable,M,buy,100,10,L1
        t2,2024-12-21,A,taxable,M,buy,50,15,L2
        t3,2024-12-28,A,taxable,M,sell,100,7.50,L1
        """,
        (),
        "t3,2024-12-28,A,M,L1,100,2024-09-24,short,750.00,1000.00,W,125.00,0.00,-125.00",
        "A,M,L2,50,2024-12-21,2024-09-17,875.00,125.00",
        id="pub550 example 2: 50 shares bought before the sale wash half the loss",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-03-31,A,taxable,X,sell,10,90,L1
        t3,2024-04-30,A,taxable,X,buy,10,95,L2
        """,
        (),
        "t2,2024-03-31,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,0.00,0.00",
        "A,X,L2,10,2024-04-30,2024-02-01,1050.00,100.00",
        id="a purchase exactly 30 days after the loss sale washes it",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-03-31,A,taxable,X,sell,10,90,L1
        t3,2024-05-01,A,taxable,X,buy,10,95,L2
        """,
        (),
        "t2,2024-03-31,A,X,L1,10,2024-01-02,short,900.00,1000.00,,0.00,0.00,-100.00",
        "A,X,L2,10,2024-05-01,2024-05-01,950.00,0.00",
        id="a purchase 31 days after the loss sale does not wash it",
    ),
    pytest.param(
        """
        t1,2023-12-01,A,taxable,X,buy,10,100,L1
        t2,2024-03-01,A,taxable,X,buy,10,92,L2
        t3,2024-03-31,A,taxable,X,sell,10,90,L1
        """,
        (),
        "t3,2024-03-31,A,X,L1,10,2023-12-01,short,900.00,1000.00,W,100.00,0.00,0.00",
        "A,X,L2,10,2024-03-01,2023-11-01,1020.00,100.00",
        id="a purchase exactly 30 days before the loss sale washes it",
    ),
    pytest.param(
        """
        t1,2023-12-01,A,taxable,X,buy,10,100,L1
        t2,2024-02-29,A,taxable,X,buy,10,92,L2
        t3,2024-03-31,A,taxable,X,sell,10,90,L1
        """,
        (),
        "t3,2024-03-31,A,X,L1,10,2023-12-01,short,900.00,1000.00,,0.00,0.00,-100.00",
        "A,X,L2,10,2024-02-29,2024-02-29,920.00,0.00",
        id="a purchase 31 days before the loss sale does not wash it",
    ),
    pytest.param(
        """
        t1,2024-10-01,A,taxable,X,buy,10,100,L1
        t2,2024-12-20,A,taxable,X,sell,10,90,L1
        t3,2025-01-10,A,taxable,X,buy,10,92,L2
        """,
        (),
        "t2,2024-12-20,A,X,L1,10,2024-10-01,short,900.00,1000.00,W,100.00,0.00,0.00",
        "A,X,L2,10,2025-01-10,2024-10-22,1020.00,100.00",
        id="a december loss washed by a january purchase is reported W in december",
    ),
    # ---- gains are never washed ---------------------------------------------------------------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-02-20,A,taxable,X,buy,10,105,L2
        t3,2024-03-01,A,taxable,X,sell,10,110,L1
        t4,2024-03-05,A,taxable,X,buy,10,108,L3
        """,
        (),
        "t3,2024-03-01,A,X,L1,10,2024-01-02,short,1100.00,1000.00,,0.00,0.00,100.00",
        """
        A,X,L2,10,2024-02-20,2024-02-20,1050.00,0.00
        A,X,L3,10,2024-03-05,2024-03-05,1080.00,0.00
        """,
        id="a gain with purchases before and after it is never washed",
    ),
    pytest.param(
        """
        t1,2023-01-03,A,taxable,X,buy,10,100,L1
        t2,2023-06-01,A,taxable,X,buy,10,150,L2
        t3,2023-09-01,A,taxable,X,sell,20,120,
        t4,2023-09-15,A,taxable,X,buy,10,118,L3
        """,
        (),
        """
        t3,2023-09-01,A,X,L1,10,2023-01-03,short,1200.00,1000.00,,0.00,0.00,200.00
        t3,2023-09-01,A,X,L2,10,2023-06-01,short,1200.00,1500.00,W,300.00,0.00,0.00
        """,
        "A,X,L3,10,2023-09-15,2023-06-15,1480.00,300.00",
        id="a sell that is partly a gain washes only its loss slice",
    ),
    # ---- IRA / Roth replacement: Rev. Rul. 2008-5 ---------------------------------------------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-03-01,A,taxable,X,sell,10,80,L1
        t3,2024-03-05,I,ira,X,buy,10,79,R1
        """,
        (),
        "t2,2024-03-01,A,X,L1,10,2024-01-02,short,800.00,1000.00,W,200.00,200.00,0.00",
        "",
        id="rev rul 2008-5: an ira purchase after the loss disallows it for good",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-01-30,I,ira,X,buy,5,90,R1
        t3,2024-02-20,R,roth,X,buy,3,85,R2
        t4,2024-03-01,A,taxable,X,sell,10,80,L1
        """,
        (),
        "t4,2024-03-01,A,X,L1,10,2024-01-02,short,800.00,1000.00,W,60.00,60.00,-140.00",
        "",
        id="rev rul 2008-5: a roth purchase inside the window before the loss washes part of it",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-03-01,A,taxable,X,sell,100,8,L1
        t3,2024-03-06,I,ira,X,buy,30,8.1,R1
        t4,2024-03-11,B,taxable,X,buy,50,8.2,B1
        """,
        (),
        "t2,2024-03-01,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,160.00,60.00,-40.00",
        "B,X,B1,50,2024-03-11,2024-01-12,510.00,100.00",
        id="ira then taxable replacements: the ira part is lost, the taxable part is deferred",
    ),
    pytest.param(
        """
        t1,2024-01-02,I,ira,X,buy,10,100,R1
        t2,2024-03-01,I,ira,X,sell,10,80,R1
        t3,2024-03-05,A,taxable,X,buy,10,79,L1
        """,
        (),
        "",
        "A,X,L1,10,2024-03-05,2024-03-05,790.00,0.00",
        id="a loss inside an ira is not reported and washes nothing",
    ),
    # ---- household-wide and substantially identical ------------------------------------------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-03-01,A,taxable,X,sell,10,90,L1
        t3,2024-03-02,B,taxable,X,buy,10,91,B1
        """,
        (),
        "t2,2024-03-01,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,0.00,0.00",
        "B,X,B1,10,2024-03-02,2024-01-03,1010.00,100.00",
        id="a purchase in another taxable account of the household washes the loss",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,SPY,buy,10,500,L1
        t2,2024-03-01,A,taxable,SPY,sell,10,480,L1
        t3,2024-03-10,B,taxable,VOO,buy,5,440,V1
        t4,2024-03-12,I,ira,IVV,buy,5,485,R1
        """,
        ("--identical", "spy=voo=ivv"),
        "t2,2024-03-01,A,SPY,L1,10,2024-01-02,short,4800.00,5000.00,W,200.00,100.00,0.00",
        "B,VOO,V1,5,2024-03-10,2024-01-11,2300.00,100.00",
        id="declared identical funds in other accounts wash the loss, ira part for good",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,GOOG,buy,10,100,L1
        t2,2024-03-01,A,taxable,GOOG,sell,10,90,L1
        t3,2024-03-05,A,taxable,GOOGL,buy,10,91,L2
        """,
        (),
        "t2,2024-03-01,A,GOOG,L1,10,2024-01-02,short,900.00,1000.00,,0.00,0.00,-100.00",
        "A,GOOGL,L2,10,2024-03-05,2024-03-05,910.00,0.00",
        id="an undeclared share class is a different security",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,AAA,buy,10,100,L1
        t2,2024-03-01,A,taxable,AAA,sell,10,90,L1
        t3,2024-03-05,A,taxable,CCC,buy,10,91,L2
        """,
        ("--identical", "AAA=BBB;BBB=CCC"),
        "t2,2024-03-01,A,AAA,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,0.00,0.00",
        "A,CCC,L2,10,2024-03-05,2024-01-06,1010.00,100.00",
        id="overlapping identical groups are merged",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,xom,buy,10,100,L1
        t2,2024-03-01,A,taxable,XOM,sell,10,90,L1
        t3,2024-03-05,A,taxable,Xom,buy,10,91,L2
        """,
        (),
        "t2,2024-03-01,A,XOM,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,0.00,0.00",
        "A,XOM,L2,10,2024-03-05,2024-01-06,1010.00,100.00",
        id="tickers in any case are one security",
    ),
    # ---- partial replacement, lot split, order of matching (Treas. Reg. §1.1091-1(b)-(d)) -----
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,50,20,L1
        t2,2024-03-01,A,taxable,X,sell,50,16,L1
        t3,2024-03-11,A,taxable,X,buy,100,15,L2
        """,
        (),
        "t2,2024-03-01,A,X,L1,50,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00",
        """
        A,X,L2,50,2024-03-11,2024-01-12,950.00,200.00
        A,X,L2,50,2024-03-11,2024-03-11,750.00,0.00
        """,
        id="more replacement shares than sold: the replacement lot splits",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,50,20,L1
        t2,2024-03-01,A,taxable,X,sell,50,16,L1
        t3,2024-03-04,A,taxable,X,buy,40,15,L2
        t4,2024-03-08,A,taxable,X,buy,40,15.5,L3
        """,
        (),
        "t2,2024-03-01,A,X,L1,50,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00",
        """
        A,X,L2,40,2024-03-04,2024-01-05,760.00,160.00
        A,X,L3,10,2024-03-08,2024-01-09,195.00,40.00
        A,X,L3,30,2024-03-08,2024-03-08,465.00,0.00
        """,
        id="two replacement purchases: the first is used whole, the second splits",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-03-01,A,taxable,X,sell,10,90,L1
        t3,2024-03-05,A,taxable,X,buy,2.5,9,L2
        """,
        (),
        "t2,2024-03-01,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,25.00,0.00,-75.00",
        "A,X,L2,2.5,2024-03-05,2024-01-06,47.50,25.00",
        id="fractional replacement shares disallow the loss pro rata",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,3,100,L1
        t2,2024-03-01,A,taxable,X,sell,3,66.666,L1
        t3,2024-03-05,A,taxable,X,buy,1,60,L2
        t4,2024-03-06,A,taxable,X,buy,1,61,L3
        t5,2024-03-07,A,taxable,X,buy,1,62,L4
        """,
        (),
        "t2,2024-03-01,A,X,L1,3,2024-01-02,short,200.00,300.00,W,100.00,0.00,0.00",
        """
        A,X,L2,1,2024-03-05,2024-01-06,93.33,33.33
        A,X,L3,1,2024-03-06,2024-01-07,94.34,33.34
        A,X,L4,1,2024-03-07,2024-01-08,95.33,33.33
        """,
        id="a loss washed in thirds is disallowed whole with cumulative rounding",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-01-03,A,taxable,X,buy,100,12,L2
        t3,2024-03-01,A,taxable,X,sell,100,8,L1
        t4,2024-03-05,A,taxable,X,sell,100,8,L2
        t5,2024-03-10,A,taxable,X,buy,150,9,L3
        """,
        (),
        """
        t3,2024-03-01,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00
        t4,2024-03-05,A,X,L2,100,2024-01-03,short,800.00,1200.00,W,200.00,0.00,-200.00
        """,
        """
        A,X,L3,100,2024-03-10,2024-01-11,1100.00,200.00
        A,X,L3,50,2024-03-10,2024-01-08,650.00,200.00
        """,
        id="one purchase replaces two earlier losses in the order they were sold",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-01-03,A,taxable,X,buy,100,10,L2
        t3,2024-03-01,A,taxable,X,sell,100,8,L1
        t4,2024-03-03,A,taxable,X,sell,100,8,L2
        t5,2024-03-05,A,taxable,X,buy,100,9,L3
        """,
        (),
        """
        t3,2024-03-01,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00
        t4,2024-03-03,A,X,L2,100,2024-01-03,short,800.00,1000.00,,0.00,0.00,-200.00
        """,
        "A,X,L3,100,2024-03-05,2024-01-06,1100.00,200.00",
        id="each replacement share absorbs one loss only",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-02-20,A,taxable,X,buy,60,9,L2
        t3,2024-03-01,A,taxable,X,buy,60,8.5,L3
        t4,2024-03-10,A,taxable,X,sell,100,8,L1
        """,
        (),
        "t4,2024-03-10,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00",
        """
        A,X,L2,60,2024-02-20,2023-12-14,660.00,120.00
        A,X,L3,40,2024-03-01,2023-12-24,420.00,80.00
        A,X,L3,20,2024-03-01,2024-03-01,170.00,0.00
        """,
        id="replacements bought before the sale are used earliest first",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-02-29,A,taxable,X,buy,30,9,L2
        t3,2024-03-10,A,taxable,X,sell,100,8,L1
        t4,2024-03-15,A,taxable,X,buy,100,7,L3
        """,
        (),
        "t3,2024-03-10,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00",
        """
        A,X,L2,30,2024-02-29,2023-12-23,330.00,60.00
        A,X,L3,70,2024-03-15,2024-01-07,630.00,140.00
        A,X,L3,30,2024-03-15,2024-03-15,210.00,0.00
        """,
        id="a purchase before the sale is used first, then one after, which splits",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-01-05,A,taxable,X,buy,10,110,L2
        t3,2024-03-01,A,taxable,X,sell,10,90,L2
        t4,2024-03-01,A,taxable,X,sell,10,90,L1
        t5,2024-03-10,A,taxable,X,buy,15,85,L3
        """,
        (),
        """
        t3,2024-03-01,A,X,L2,10,2024-01-05,short,900.00,1100.00,W,200.00,0.00,0.00
        t4,2024-03-01,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,50.00,0.00,-50.00
        """,
        """
        A,X,L3,10,2024-03-10,2024-01-14,1050.00,200.00
        A,X,L3,5,2024-03-10,2024-01-11,475.00,50.00
        """,
        id="two loss sales on one day are matched in file order",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-02-20,A,taxable,X,buy,100,9,L2
        t3,2024-03-01,A,taxable,X,sell,150,8,
        """,
        (),
        """
        t3,2024-03-01,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,100.00,0.00,-100.00
        t3,2024-03-01,A,X,L2,50,2024-02-20,short,400.00,450.00,,0.00,0.00,-50.00
        """,
        "A,X,L2,50,2024-02-20,2023-12-23,550.00,100.00",
        id="the unsold rest of another purchase replaces a lot sold in the same sell",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-03-01,A,taxable,X,sell,40,8,L1
        t3,2024-03-05,A,taxable,X,buy,40,9,L2
        """,
        (),
        "t2,2024-03-01,A,X,L1,40,2024-01-02,short,320.00,400.00,W,80.00,0.00,0.00",
        """
        A,X,L1,60,2024-01-02,2024-01-02,600.00,0.00
        A,X,L2,40,2024-03-05,2024-01-06,440.00,80.00
        """,
        id="a partial loss sale leaves the rest of its lot alone and washes into the new purchase",
    ),
    # ---- same day (Pub. 550: a purchase on the day of the sale is within the period) ---------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-03-01,A,taxable,X,buy,100,7,L2
        t3,2024-03-01,A,taxable,X,sell,100,7,L1
        """,
        (),
        "t3,2024-03-01,A,X,L1,100,2024-01-02,short,700.00,1000.00,W,300.00,0.00,0.00",
        "A,X,L2,100,2024-03-01,2024-01-02,1000.00,300.00",
        id="a same-day purchase before the loss sale washes it",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-03-01,A,taxable,X,sell,100,7,L1
        t3,2024-03-01,A,taxable,X,buy,100,7,L2
        """,
        (),
        "t2,2024-03-01,A,X,L1,100,2024-01-02,short,700.00,1000.00,W,300.00,0.00,0.00",
        "A,X,L2,100,2024-03-01,2024-01-02,1000.00,300.00",
        id="a same-day purchase after the loss sale washes it",
    ),
    pytest.param(
        """
        t1,2024-03-01,A,taxable,X,buy,10,10,L1
        t2,2024-03-01,A,taxable,X,sell,10,9,L1
        t3,2024-03-02,A,taxable,X,buy,10,9,L2
        """,
        (),
        "t2,2024-03-01,A,X,L1,10,2024-03-01,short,90.00,100.00,W,10.00,0.00,0.00",
        "A,X,L2,10,2024-03-02,2024-03-02,100.00,10.00",
        id="a lot bought and sold the same day tacks zero days onto its replacement",
    ),
    # ---- chains and tacking (IRC §1091(d), §1223(3)) ------------------------------------------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-02-01,A,taxable,X,sell,100,8,L1
        t3,2024-02-10,A,taxable,X,buy,100,9,L2
        t4,2024-03-01,A,taxable,X,sell,100,8.5,L2
        t5,2024-03-15,A,taxable,X,buy,100,8,L3
        """,
        (),
        """
        t2,2024-02-01,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00
        t4,2024-03-01,A,X,L2,100,2024-01-11,short,850.00,1100.00,W,250.00,0.00,0.00
        """,
        "A,X,L3,100,2024-03-15,2024-01-25,1050.00,250.00",
        id="a washed replacement sold at a loss is washed again and the periods chain",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,100,10,L1
        t2,2024-02-01,A,taxable,X,sell,100,8,L1
        t3,2024-02-05,A,taxable,X,buy,100,9,L2
        t4,2024-02-20,A,taxable,X,sell,100,8.5,L2
        t5,2024-03-01,A,taxable,X,buy,100,8,L3
        """,
        (),
        """
        t2,2024-02-01,A,X,L1,100,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00
        t4,2024-02-20,A,X,L2,100,2024-01-06,short,850.00,1100.00,W,250.00,0.00,0.00
        """,
        "A,X,L3,100,2024-03-01,2024-01-16,1050.00,250.00",
        id="a chain in one window: the first loss is used up, a new purchase washes the second",
    ),
    pytest.param(
        """
        t1,2022-01-03,A,taxable,X,buy,10,50,L1
        t2,2023-06-01,A,taxable,X,sell,10,40,L1
        t3,2023-06-10,A,taxable,X,buy,10,41,L2
        t4,2023-07-01,A,taxable,X,sell,10,60,L2
        """,
        (),
        """
        t2,2023-06-01,A,X,L1,10,2022-01-03,long,400.00,500.00,W,100.00,0.00,0.00
        t4,2023-07-01,A,X,L2,10,2022-01-12,long,600.00,510.00,,0.00,0.00,90.00
        """,
        "",
        id="a replacement of a long-term lot is long-term at once through tacking",
    ),
    pytest.param(
        """
        t1,2023-01-03,A,taxable,X,buy,2,100,L1
        t2,2023-07-03,A,taxable,X,sell,2,90,L1
        t3,2023-07-10,A,taxable,X,buy,2,95,L2
        t4,2024-01-10,A,taxable,X,sell,1,120,L2
        t5,2024-01-11,A,taxable,X,sell,1,120,L2
        """,
        (),
        """
        t2,2023-07-03,A,X,L1,2,2023-01-03,short,180.00,200.00,W,20.00,0.00,0.00
        t4,2024-01-10,A,X,L2,1,2023-01-10,short,120.00,105.00,,0.00,0.00,15.00
        t5,2024-01-11,A,X,L2,1,2023-01-10,long,120.00,105.00,,0.00,0.00,15.00
        """,
        "",
        id="the tacked acquisition date decides the term to the day",
    ),
    # ---- lot methods (Treas. Reg. §1.1012-1(c)) -----------------------------------------------
    pytest.param(
        """
        t1,2023-01-03,A,taxable,X,buy,10,100,L1
        t2,2023-03-01,A,taxable,X,buy,10,130,L2
        t3,2023-05-01,A,taxable,X,buy,10,110,L3
        t4,2023-08-01,A,taxable,X,sell,15,120,
        """,
        ("--lot-method", "hifo"),
        """
        t4,2023-08-01,A,X,L2,10,2023-03-01,short,1200.00,1300.00,,0.00,0.00,-100.00
        t4,2023-08-01,A,X,L3,5,2023-05-01,short,600.00,550.00,,0.00,0.00,50.00
        """,
        """
        A,X,L1,10,2023-01-03,2023-01-03,1000.00,0.00
        A,X,L3,5,2023-05-01,2023-05-01,550.00,0.00
        """,
        id="hifo relieves the highest basis per share first and splits the next lot",
    ),
    pytest.param(
        """
        t1,2023-01-03,A,taxable,X,buy,10,100,L1
        t2,2023-02-01,A,taxable,X,sell,10,80,L1
        t3,2023-02-10,A,taxable,X,buy,10,95,L2
        t4,2023-04-01,A,taxable,X,buy,10,110,L3
        t5,2023-06-01,A,taxable,X,sell,10,100,
        """,
        ("--lot-method", "hifo"),
        """
        t2,2023-02-01,A,X,L1,10,2023-01-03,short,800.00,1000.00,W,200.00,0.00,0.00
        t5,2023-06-01,A,X,L2,10,2023-01-12,short,1000.00,1150.00,,0.00,0.00,-150.00
        """,
        "A,X,L3,10,2023-04-01,2023-04-01,1100.00,0.00",
        id="hifo ranks lots by their wash-adjusted basis",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,50,20,L1
        t2,2024-03-01,A,taxable,X,sell,50,16,L1
        t3,2024-03-11,A,taxable,X,buy,100,15,L2
        t4,2024-05-01,A,taxable,X,sell,60,14,
        """,
        (),
        """
        t2,2024-03-01,A,X,L1,50,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00
        t4,2024-05-01,A,X,L2,50,2024-01-12,short,700.00,950.00,,0.00,0.00,-250.00
        t4,2024-05-01,A,X,L2,10,2024-03-11,short,140.00,150.00,,0.00,0.00,-10.00
        """,
        "A,X,L2,40,2024-03-11,2024-03-11,600.00,0.00",
        id="fifo relieves the tacked replacement part of a split lot first",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,50,20,L1
        t2,2024-03-01,A,taxable,X,sell,50,16,L1
        t3,2024-03-11,A,taxable,X,buy,100,15,L2
        t4,2024-05-01,A,taxable,X,sell,10,14,
        """,
        ("--lot-method", "hifo"),
        """
        t2,2024-03-01,A,X,L1,50,2024-01-02,short,800.00,1000.00,W,200.00,0.00,0.00
        t4,2024-05-01,A,X,L2,10,2024-01-12,short,140.00,190.00,,0.00,0.00,-50.00
        """,
        """
        A,X,L2,40,2024-03-11,2024-01-12,760.00,160.00
        A,X,L2,50,2024-03-11,2024-03-11,750.00,0.00
        """,
        id="hifo relieves the adjusted part of a split lot and prorates its adjustment",
    ),
    pytest.param(
        """
        t1,2023-01-03,A,taxable,X,buy,10,100,L1
        t2,2023-03-01,A,taxable,X,buy,10,90,L2
        t3,2023-08-01,A,taxable,X,sell,4,95,L2
        """,
        ("--lot-method", "specific"),
        "t3,2023-08-01,A,X,L2,4,2023-03-01,short,380.00,360.00,,0.00,0.00,20.00",
        """
        A,X,L1,10,2023-01-03,2023-01-03,1000.00,0.00
        A,X,L2,6,2023-03-01,2023-03-01,540.00,0.00
        """,
        id="specific identification relieves the named lot",
    ),
    # ---- cents --------------------------------------------------------------------------------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,Y,buy,3.5,33.33,L1
        t2,2024-02-01,A,taxable,Y,sell,1.25,40,L1
        """,
        (),
        "t2,2024-02-01,A,Y,L1,1.25,2024-01-02,short,50.00,41.66,,0.00,0.00,8.34",
        "A,Y,L1,2.25,2024-01-02,2024-01-02,75.00,0.00",
        id="a fractional partial relief takes its basis pro rata to the cent",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,Z,buy,1,10.025,L1
        t2,2024-02-01,A,taxable,Z,sell,1,12.125,L1
        """,
        (),
        "t2,2024-02-01,A,Z,L1,1,2024-01-02,short,12.13,10.03,,0.00,0.00,2.10",
        "",
        id="half a cent rounds up on basis and proceeds",
    ),
    pytest.param(
        """
        t1,2024-01-02,A,taxable,Z,buy,1,10,L1
        t2,2024-01-03,A,taxable,Z,buy,1,10,L2
        t3,2024-01-04,A,taxable,Z,buy,1,10,L3
        t4,2024-02-01,A,taxable,Z,sell,3,10.00333,
        """,
        (),
        """
        t4,2024-02-01,A,Z,L1,1,2024-01-02,short,10.00,10.00,,0.00,0.00,0.00
        t4,2024-02-01,A,Z,L2,1,2024-01-03,short,10.01,10.00,,0.00,0.00,0.01
        t4,2024-02-01,A,Z,L3,1,2024-01-04,short,10.00,10.00,,0.00,0.00,0.00
        """,
        "",
        id="proceeds split over lots add up to the sell's proceeds",
    ),
    # ---- documented choices (docs/ledger.md) --------------------------------------------------
    pytest.param(
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-02-20,A,taxable,X,buy,10,90,L2
        t3,2024-02-25,A,taxable,X,sell,4,95,L2
        t4,2024-03-01,A,taxable,X,sell,10,80,L1
        """,
        (),
        """
        t3,2024-02-25,A,X,L2,4,2024-02-20,short,380.00,360.00,,0.00,0.00,20.00
        t4,2024-03-01,A,X,L1,10,2024-01-02,short,800.00,1000.00,W,120.00,0.00,-80.00
        """,
        "A,X,L2,6,2024-02-20,2023-12-23,660.00,120.00",
        id="only the still-held shares of a purchase before the sale absorb the loss",
    ),
    pytest.param(
        """
        t1,2024-01-03,A,taxable,X,buy,100,10,L1
        t2,2024-01-18,A,taxable,X,buy,100,10,L2
        t3,2024-01-31,A,taxable,X,sell,100,9,L2
        """,
        (),
        "t3,2024-01-31,A,X,L2,100,2024-01-18,short,900.00,1000.00,W,100.00,0.00,0.00",
        "A,X,L1,100,2024-01-03,2023-12-21,1100.00,100.00",
        id="shares bought before the sold shares inside the window replace them",
    ),
    # ---- short sales (IRC §1233, §1091(e)) ----------------------------------------------------
    pytest.param(
        """
        t1,2023-01-03,A,taxable,X,short,10,50,
        t2,2024-06-03,A,taxable,X,cover,10,40,
        """,
        (),
        "t2,2024-06-03,A,X,t1,10,2023-01-03,short,500.00,400.00,,0.00,0.00,100.00",
        "",
        id="covering a short held over a year is still short-term",
    ),
    pytest.param(
        """
        t1,2024-01-03,A,taxable,X,short,10,50,S1
        t2,2024-02-01,A,taxable,X,cover,10,60,S1
        t3,2024-02-10,A,taxable,X,short,10,55,S2
        """,
        (),
        "t2,2024-02-01,A,X,S1,10,2024-01-03,short,500.00,600.00,W,100.00,0.00,0.00",
        "A,X,S2,-10,2024-02-10,2024-02-10,450.00,100.00",
        id="a loss on covering is washed by a new short sale which lowers its proceeds",
    ),
]


@pytest.mark.parametrize(("tx", "extra", "sales", "lots"), CASES)
def test_the_realized_report_matches_the_hand_computed_case(
    tmp_path: Path, tx: str, extra: tuple[str, ...], sales: str, lots: str
) -> None:
    rc, sales_path, lots_path = _run(tmp_path, tx, *extra)
    assert rc == 0
    assert _read(sales_path, SALES_HEADER) == _rows(sales)
    assert sorted(_read(lots_path, LOTS_HEADER)) == sorted(_rows(lots))


BUY = "t1,2024-01-02,A,taxable,X,buy,10,10,L1"

# (transactions, extra CLI args, the row and the field the one-line error must name)
BAD = [
    pytest.param(
        BUY + "\nt2,2024-02-01,A,taxable,X,sell,11,9,", (), "t2", "quantity", id="oversell"
    ),
    pytest.param(
        BUY + "\nt2,2024-01-03,A,taxable,X,buy,10,10,L2\nt3,2024-02-01,A,taxable,X,sell,11,9,L1",
        (),
        "t3",
        "quantity",
        id="a sell of more than the named lot holds, though the account holds enough",
    ),
    pytest.param("t2,2024-02-01,B,taxable,X,sell,1,9,", (), "t2", "quantity", id="nothing held"),
    pytest.param(
        "t1,2024-01-02,A,taxable,X,short,10,10,\nt2,2024-02-01,A,taxable,X,sell,1,9,",
        (),
        "t2",
        "quantity",
        id="a sell when the account is only short",
    ),
    pytest.param(
        "t1,2024-01-02,A,taxable,X,short,10,10,\nt2,2024-02-01,A,taxable,X,cover,11,9,",
        (),
        "t2",
        "quantity",
        id="a cover of more than is short",
    ),
    pytest.param("t1,2024-02-30,A,taxable,X,buy,10,10,L1", (), "t1", "date", id="no such day"),
    pytest.param("t1,2024/01/02,A,taxable,X,buy,10,10,L1", (), "t1", "date", id="slashes"),
    pytest.param("t1,,A,taxable,X,buy,10,10,L1", (), "t1", "date", id="empty date"),
    pytest.param("t1,9999-12-31,A,taxable,X,buy,10,10,L1", (), "t1", "date", id="year 9999"),
    pytest.param("t1,0001-01-01,A,taxable,X,buy,10,10,L1", (), "t1", "date", id="year 1"),
    pytest.param(
        BUY + "\nt2,2024-01-01,A,taxable,X,buy,10,10,L2", (), "t2", "date", id="out of order"
    ),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,-10,10,L1", (), "t1", "quantity", id="negative"),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,0,10,L1", (), "t1", "quantity", id="zero"),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,,10,L1", (), "t1", "quantity", id="no quantity"),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,1e40,10,L1", (), "t1", "quantity", id="1e40"),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,1_000,10,L1", (), "t1", "quantity", id="1_000"),
    pytest.param(
        "t1,2024-01-02,A,taxable,X,buy,1" + "0" * 30 + ",10,L1",
        (),
        "t1",
        "quantity",
        id="a quantity beyond the decimal context",
    ),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,10,abc,L1", (), "t1", "price", id="price abc"),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,10,-1,L1", (), "t1", "price", id="price < 0"),
    pytest.param("t1,2024-01-02,A,taxable,X,buy,10,Infinity,L1", (), "t1", "price", id="inf"),
    pytest.param("t1,2024-01-02,A,taxable,X,hold,10,10,L1", (), "t1", "side", id="unknown side"),
    pytest.param("t1,2024-01-02,A,401k,X,buy,10,10,L1", (), "t1", "account_type", id="401k"),
    pytest.param(
        BUY + "\nt2,2024-02-01,A,ira,X,buy,1,9,", (), "t2", "account_type", id="type change"
    ),
    pytest.param(BUY + "\nt1,2024-01-03,A,taxable,X,buy,1,9,", (), "t1", "id", id="duplicate"),
    pytest.param(BUY + "\nt2,2024-02-01,A,taxable,X,sell,1,9,L9", (), "t2", "lot_id", id="no lot"),
    pytest.param(
        BUY + "\nt2,2024-01-02,A,taxable,Y,buy,10,10,L2\nt3,2024-02-01,A,taxable,X,sell,1,9,L2",
        (),
        "t3",
        "lot_id",
        id="a lot of another symbol",
    ),
    pytest.param(
        BUY + "\nt2,2024-02-01,B,taxable,X,sell,1,9,L1", (), "t2", "lot_id", id="other account"
    ),
    pytest.param(
        BUY + "\nt2,2024-02-01,A,taxable,X,buy,1,9,L1", (), "t2", "lot_id", id="lot still open"
    ),
    pytest.param(
        BUY + "\nt2,2024-02-01,A,taxable,X,sell,1,9,",
        ("--lot-method", "specific"),
        "t2",
        "lot_id",
        id="specific identification without a lot",
    ),
]


@pytest.mark.parametrize(("tx", "extra", "row", "field"), BAD)
def test_a_bad_row_is_one_line_naming_the_row_and_field_and_nothing_is_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    tx: str,
    extra: tuple[str, ...],
    row: str,
    field: str,
) -> None:
    rc, sales_path, lots_path = _run(tmp_path, tx, *extra)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"taxview: error: row {row}, field {field}: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not sales_path.exists() and not lots_path.exists()


def test_an_identical_group_with_a_comma_is_refused_rather_than_missing_the_wash_sale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "SPY=VOO,IVV=X" used to read as one group {SPY, "VOO,IVV", X}: VOO was not identical to
    # SPY, so the loss below went unwashed (IRC §1091(a)) without a word.
    tx = """
        t1,2024-01-02,A,taxable,SPY,buy,10,10,L1
        t2,2024-02-01,A,taxable,SPY,sell,10,9,L1
        t3,2024-02-02,A,taxable,VOO,buy,10,9,L2
        """
    rc, sales_path, lots_path = _run(tmp_path, tx, "--identical", "SPY=VOO,IVV=X")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("taxview: error: field --identical: ") and err.count("\n") == 1
    assert not sales_path.exists() and not lots_path.exists()


def test_a_quantity_written_with_an_exponent_is_read_exactly() -> None:
    # pandas writes a 0.00001-share fraction as "1e-05"; it is that number, not an error.
    from decimal import Decimal

    from producer.realized import parse_row

    row = {
        "id": "t1",
        "date": "2024-01-02",
        "account": "A",
        "account_type": "taxable",
        "symbol": "X",
        "side": "buy",
        "quantity": "1e-05",
        "price": "2.5E2",
        "lot_id": "L1",
    }
    txn = parse_row(row, line=2)
    assert txn.quantity == Decimal("0.00001")
    assert txn.price == Decimal(250)
