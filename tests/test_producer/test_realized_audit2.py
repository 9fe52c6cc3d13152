"""Second independent audit of ``taxview realized`` (DESIGN.md §5, docs/ledger.md).

The first audits (``test_realized_audit.py``, ``tests/test_shared/test_ledger_pub550_cases.py``)
cover the single rules one at a time.  These cases combine them: several loss slices of one
sale competing for the same replacement shares under HIFO (Treas. Reg. §1.1091-1(b)), chains
tacked twice into a long-term holding period (IRC §1223(3)), IRA and Roth replacements in the
middle of a chain (Rev. Rul. 2008-5), short chains (IRC §1233, §1091(e)), year boundaries,
leap days, three-way identical groups in any case, fractional replacements with half-cent
rounding, and the printed summary.

Every expected row is a literal worked out by hand, with the arithmetic in a comment, from the
rules and the documented conventions of docs/ledger.md: ``quantity × price`` rounded half-up
to the cent; a partial relief or split takes ``basis × part / whole``; a partial wash disallows
``loss × matched / sold``, rounded cumulatively; a replacement's ``acquired`` is its trade date
minus the days the sold shares were held (``date sold − acquired``, itself possibly tacked).
Day counts are calendar days.  LOTS rows are compared in file order: accounts and symbols
sorted, the parts of a split lot in the order they were carved.  Nothing here asks the ledger
for an expected value.
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


# (transactions, extra CLI args, expected SALES rows in order, expected LOTS rows in order)
CASES = [
    # ---- one sale over several loss lots: Treas. Reg. §1.1091-1(b) -----------------------------
    pytest.param(
        # HIFO relieves L2 (120/sh) before L1 (100/sh), but shares disposed of in one sale count
        # as disposed of in the order they were originally acquired (§1.1091-1(b), last
        # sentence): L1's loss is matched first and takes all 10 of R.
        # L2: 900 - 1200 = -300, unmatched.  L1: 900 - 1000 = -100, all disallowed.
        # L1 held 2024-01-02 -> 2024-03-01 = 59 days; R: 950 + 100 = 1050, acquired
        # 2024-02-20 - 59 days = 2023-12-23.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-02-01,A,taxable,X,buy,10,120,L2
        t3,2024-02-20,B,taxable,X,buy,10,95,R
        t4,2024-03-01,A,taxable,X,sell,20,90,
        """,
        ("--lot-method", "hifo"),
        """
        t4,2024-03-01,A,X,L2,10,2024-02-01,short,900.00,1200.00,,0.00,0.00,-300.00
        t4,2024-03-01,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,0.00,0.00
        """,
        """
        B,X,R,10,2024-02-20,2023-12-23,1050.00,100.00
        """,
        id="a hifo sale over two loss lots matches the earlier acquired lot first",
    ),
    pytest.param(
        # The same sale, the replacement bought after it: 15 shares.  L1's loss first
        # (§1.1091-1(b)): 10 shares, 100 disallowed, 910 + 100 = 1010, acquired
        # 2024-03-05 - 59 = 2024-01-06.  Then L2's: 5 of 10 shares, 300 × 5/10 = 150,
        # 455 + 150 = 605; L2 held 2024-02-01 -> 2024-03-01 = 29 days: 2024-03-05 - 29 =
        # 2024-02-05.  L2's slice: -300 + 150 = -150.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-02-01,A,taxable,X,buy,10,120,L2
        t3,2024-03-01,A,taxable,X,sell,20,90,
        t4,2024-03-05,A,taxable,X,buy,15,91,L3
        """,
        ("--lot-method", "hifo"),
        """
        t3,2024-03-01,A,X,L2,10,2024-02-01,short,900.00,1200.00,W,150.00,0.00,-150.00
        t3,2024-03-01,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,0.00,0.00
        """,
        """
        A,X,L3,10,2024-03-05,2024-01-06,1010.00,100.00
        A,X,L3,5,2024-03-05,2024-02-05,605.00,150.00
        """,
        id="a later purchase replaces the loss lots of one hifo sale in acquisition order",
    ),
    pytest.param(
        # HIFO covers the lowest proceeds first: S2 (90/sh) then S1 (100/sh).  Cover losses:
        # S2 900 - 1100 = -200, S1 1000 - 1100 = -100.  S1 was shorted first, so the new short
        # S3 replaces S1's loss (§1.1091-1(b), §1091(e)): S3's proceeds 1050 - 100 = 950.
        """
        t1,2024-01-02,A,taxable,X,short,10,100,S1
        t2,2024-01-20,A,taxable,X,short,10,90,S2
        t3,2024-02-01,A,taxable,X,cover,20,110,
        t4,2024-02-10,A,taxable,X,short,10,105,S3
        """,
        ("--lot-method", "hifo"),
        """
        t3,2024-02-01,A,X,S2,10,2024-01-20,short,900.00,1100.00,,0.00,0.00,-200.00
        t3,2024-02-01,A,X,S1,10,2024-01-02,short,1000.00,1100.00,W,100.00,0.00,0.00
        """,
        """
        A,X,S3,-10,2024-02-10,2024-02-10,950.00,100.00
        """,
        id="a hifo cover over two short lots matches the earlier short first",
    ),
    pytest.param(
        # HIFO sells L2 (110/sh, bought 02-15) whole, then 5 of L1 (100/sh, bought 02-05).
        # Proceeds 15 × 90 = 1350: L2 10/15 -> 900.00, L1 450.00.  Losses: L2 200 (held 15
        # days), L1 50 (held 25 days).  L1's loss first (acquired first): its only candidate
        # would be the rest of its own purchase, which never replaces it (Rev. Rul. 56-602).
        # L2's loss: L1's unsold 5 shares, bought 02-05, are in the window: 200 × 5/10 = 100,
        # 500 + 100 = 600, acquired 2024-02-05 - 15 = 2024-01-21.
        # R (10 sh, 03-10): L1's pending 5 first: 50, 460 + 50 = 510, 2024-03-10 - 25 =
        # 2024-02-14; then L2's last 5: 200 - 100 = 100, 460 + 100 = 560, 2024-03-10 - 15 =
        # 2024-02-24.
        """
        t1,2024-02-05,A,taxable,X,buy,10,100,L1
        t2,2024-02-15,A,taxable,X,buy,10,110,L2
        t3,2024-03-01,A,taxable,X,sell,15,90,
        t4,2024-03-10,A,taxable,X,buy,10,92,R
        """,
        ("--lot-method", "hifo"),
        """
        t3,2024-03-01,A,X,L2,10,2024-02-15,short,900.00,1100.00,W,200.00,0.00,0.00
        t3,2024-03-01,A,X,L1,5,2024-02-05,short,450.00,500.00,W,50.00,0.00,0.00
        """,
        """
        A,X,L1,5,2024-02-05,2024-01-21,600.00,100.00
        A,X,R,5,2024-03-10,2024-02-14,510.00,50.00
        A,X,R,5,2024-03-10,2024-02-24,560.00,100.00
        """,
        id="the unsold rest of one loss lot replaces the other and a purchase takes the rest",
    ),
    # ---- chains: basis carried and holding period tacked twice (IRC §1091(d), §1223(3)) -------
    pytest.param(
        # L1 held 2023-03-01 -> 2023-12-01 = 275 days, loss 500 - 400 = 100 -> L2: 410 + 100 =
        # 510, acquired 2023-12-10 - 275 = 2023-03-10.  L2 sold 2024-01-05: 350 - 510 = -160,
        # held 2023-03-10 -> 2024-01-05 = 301 days -> L3: 360 + 160 = 520, acquired
        # 2024-01-25 - 301 = 2023-03-30.  Long-term from 2024-03-31 (more than one year,
        # IRC §1222): sold 03-30 short-term, 03-31 long-term; each half 300 - 260 = +40.
        """
        t1,2023-03-01,A,taxable,X,buy,10,50,L1
        t2,2023-12-01,A,taxable,X,sell,10,40,L1
        t3,2023-12-10,A,taxable,X,buy,10,41,L2
        t4,2024-01-05,A,taxable,X,sell,10,35,L2
        t5,2024-01-25,A,taxable,X,buy,10,36,L3
        t6,2024-03-30,A,taxable,X,sell,5,60,L3
        t7,2024-03-31,A,taxable,X,sell,5,60,L3
        """,
        (),
        """
        t2,2023-12-01,A,X,L1,10,2023-03-01,short,400.00,500.00,W,100.00,0.00,0.00
        t4,2024-01-05,A,X,L2,10,2023-03-10,short,350.00,510.00,W,160.00,0.00,0.00
        t6,2024-03-30,A,X,L3,5,2023-03-30,short,300.00,260.00,,0.00,0.00,40.00
        t7,2024-03-31,A,X,L3,5,2023-03-30,long,300.00,260.00,,0.00,0.00,40.00
        """,
        "",
        id="a chain tacked twice turns long-term on the first anniversary of the tacked day after",
    ),
    pytest.param(
        # L1 held 2024-01-02 -> 2024-02-01 = 30 days, loss 100.  IR (IRA, 4 sh) takes 4/10:
        # 40 for good (Rev. Rul. 2008-5), no basis.  L2 takes the other 6: 100 - 40 = 60;
        # L2 splits: 6 sh 534 + 60 = 594, acquired 2024-02-15 - 30 = 2024-01-16; 4 sh 356.
        # FIFO then sells the tacked part first: 6 sh 480 - 594 = -114 (acquired 01-16),
        # 4 sh 320 - 356 = -36 (acquired 02-15).  IR is used up; L2's parts never replace each
        # other.  L3 (5 sh) replaces 5 of the 6 earlier-acquired shares: 114 × 5/6 = 95.00,
        # 410 + 95 = 505, held 01-16 -> 03-01 = 45 days: 2024-03-20 - 45 = 2024-02-04.
        # L4 (10 sh): the last 1 of 6: 114 - 95 = 19, 83 + 19 = 102, 2024-03-25 - 45 =
        # 2024-02-09; then the 4-share slice: 36, 332 + 36 = 368, held 02-15 -> 03-01 = 15
        # days: 2024-03-10; 5 sh untouched: 415.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-02-01,A,taxable,X,sell,10,90,L1
        t3,2024-02-10,I,ira,X,buy,4,88,IR
        t4,2024-02-15,A,taxable,X,buy,10,89,L2
        t5,2024-03-01,A,taxable,X,sell,10,80,
        t6,2024-03-20,A,taxable,X,buy,5,82,L3
        t7,2024-03-25,A,taxable,X,buy,10,83,L4
        """,
        (),
        """
        t2,2024-02-01,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,40.00,0.00
        t5,2024-03-01,A,X,L2,6,2024-01-16,short,480.00,594.00,W,114.00,0.00,0.00
        t5,2024-03-01,A,X,L2,4,2024-02-15,short,320.00,356.00,W,36.00,0.00,0.00
        """,
        """
        A,X,L3,5,2024-03-20,2024-02-04,505.00,95.00
        A,X,L4,1,2024-03-25,2024-02-09,102.00,19.00
        A,X,L4,4,2024-03-25,2024-03-10,368.00,36.00
        A,X,L4,5,2024-03-25,2024-03-25,415.00,0.00
        """,
        id="a chain through an ira and a split lot carries each slice's loss and period",
    ),
    pytest.param(
        # The IRA replacement absorbs L1's loss for good (Rev. Rul. 2008-5).  Its own sale at a
        # loss inside the IRA is not reported and starts no wash sale, so L2, bought within 30
        # days of both sales, keeps its plain cost 810.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-03-01,A,taxable,X,sell,10,90,L1
        t3,2024-03-05,I,ira,X,buy,10,91,IR
        t4,2024-03-10,I,ira,X,sell,10,80,IR
        t5,2024-03-15,A,taxable,X,buy,10,81,L2
        """,
        (),
        """
        t2,2024-03-01,A,X,L1,10,2024-01-02,short,900.00,1000.00,W,100.00,100.00,0.00
        """,
        """
        A,X,L2,10,2024-03-15,2024-03-15,810.00,0.00
        """,
        id="an ira replacement sold at a loss in the ira passes nothing on",
    ),
    pytest.param(
        # S1 cover loss 1050 - 1000 = 50 -> S2's proceeds 1040 - 50 = 990.  S2 covered at 1100:
        # loss 110 -> S3's proceeds 1080 - 110 = 970.  S3 covered at 900: gain 70.  No holding
        # period is tacked from a short (docs/ledger.md); every cover is short-term (§1233(a)).
        # Net 70 = short proceeds 3120 - cover costs 3050.
        """
        t1,2024-01-02,A,taxable,X,short,10,100,S1
        t2,2024-01-20,A,taxable,X,cover,10,105,S1
        t3,2024-01-25,A,taxable,X,short,10,104,S2
        t4,2024-02-05,A,taxable,X,cover,10,110,S2
        t5,2024-02-20,A,taxable,X,short,10,108,S3
        t6,2024-03-01,A,taxable,X,cover,10,90,S3
        """,
        (),
        """
        t2,2024-01-20,A,X,S1,10,2024-01-02,short,1000.00,1050.00,W,50.00,0.00,0.00
        t4,2024-02-05,A,X,S2,10,2024-01-25,short,990.00,1100.00,W,110.00,0.00,0.00
        t6,2024-03-01,A,X,S3,10,2024-02-20,short,970.00,900.00,,0.00,0.00,70.00
        """,
        "",
        id="a short chain carries each cover loss into the next short's proceeds",
    ),
    # ---- year boundary, 30-day edges, leap day (IRC §1091(a), §1222; Rev. Rul. 66-7) ----------
    pytest.param(
        # Loss sale Friday 2024-12-20: 800 - 1000 = -200, held 2024-06-03 -> 12-20 = 200 days.
        # Day 30 is Sunday 2025-01-19: L2 (4 sh) washes 200 × 4/10 = 80, 328 + 80 = 408,
        # acquired 2025-01-19 - 200 = 2024-07-03.  Day 31 (2025-01-20): L3 is no replacement.
        # L2 sold 2025-02-03 at 110: 440 - 408 = +32, short-term.  The loss stays in 2024's
        # report: -200 + 80 = -120, W.
        """
        t1,2024-06-03,A,taxable,X,buy,10,100,L1
        t2,2024-12-20,A,taxable,X,sell,10,80,L1
        t3,2025-01-19,B,taxable,X,buy,4,82,L2
        t4,2025-01-20,B,taxable,X,buy,6,83,L3
        t5,2025-02-03,B,taxable,X,sell,4,110,L2
        """,
        (),
        """
        t2,2024-12-20,A,X,L1,10,2024-06-03,short,800.00,1000.00,W,80.00,0.00,-120.00
        t5,2025-02-03,B,X,L2,4,2024-07-03,short,440.00,408.00,,0.00,0.00,32.00
        """,
        """
        B,X,L3,6,2025-01-20,2025-01-20,498.00,0.00
        """,
        id="a december loss is washed by a purchase on day 30 in january but not on day 31",
    ),
    pytest.param(
        # Loss sale 2025-01-01: 720 - 1000 = -280, held 2024-06-03 -> 2025-01-01 = 212 days.
        # 30 days before is 2024-12-02: R1 replaces it (710 + 280 = 990, acquired
        # 2024-12-02 - 212 = 2024-05-04); R0, bought 31 days before, does not.
        """
        t1,2024-06-03,A,taxable,X,buy,10,100,L1
        t2,2024-12-01,B,taxable,X,buy,10,70,R0
        t3,2024-12-02,B,taxable,X,buy,10,71,R1
        t4,2025-01-01,A,taxable,X,sell,10,72,L1
        """,
        (),
        """
        t4,2025-01-01,A,X,L1,10,2024-06-03,short,720.00,1000.00,W,280.00,0.00,0.00
        """,
        """
        B,X,R0,10,2024-12-01,2024-12-01,700.00,0.00
        B,X,R1,10,2024-12-02,2024-05-04,990.00,280.00
        """,
        id="a purchase 30 days before a new year loss washes it and 31 days before does not",
    ),
    pytest.param(
        # L1 bought on a leap day, sold 2024-05-01 at a loss of 50, held 62 days; L2 bought
        # later that day: 460 + 50 = 510, acquired 2024-05-01 - 62 = 2024-02-29.  Long-term
        # from 2025-03-01 (the day after Feb 29 is Mar 1): 2025-02-28 short, 03-01 long,
        # each half 300 - 255 = +45.
        """
        t1,2024-02-29,A,taxable,X,buy,10,50,L1
        t2,2024-05-01,A,taxable,X,sell,10,45,L1
        t3,2024-05-01,A,taxable,X,buy,10,46,L2
        t4,2025-02-28,A,taxable,X,sell,5,60,L2
        t5,2025-03-01,A,taxable,X,sell,5,60,L2
        """,
        (),
        """
        t2,2024-05-01,A,X,L1,10,2024-02-29,short,450.00,500.00,W,50.00,0.00,0.00
        t4,2025-02-28,A,X,L2,5,2024-02-29,short,300.00,255.00,,0.00,0.00,45.00
        t5,2025-03-01,A,X,L2,5,2024-02-29,long,300.00,255.00,,0.00,0.00,45.00
        """,
        "",
        id="a replacement tacked back to a leap day is long-term from march 1 a year later",
    ),
    pytest.param(
        # 30 days before 2024-03-30 is 2024-02-29 (February has 29 days in 2024): R1 washes,
        # R0 bought 2024-02-28 does not.  Loss 500 - 400 = 100, held 2024-01-02 -> 03-30 =
        # 88 days: R1 410 + 100 = 510, acquired 2024-02-29 - 88 = 2023-12-03.
        """
        t1,2024-01-02,A,taxable,X,buy,10,50,L1
        t2,2024-02-28,B,taxable,X,buy,10,42,R0
        t3,2024-02-29,B,taxable,X,buy,10,41,R1
        t4,2024-03-30,A,taxable,X,sell,10,40,L1
        """,
        (),
        """
        t4,2024-03-30,A,X,L1,10,2024-01-02,short,400.00,500.00,W,100.00,0.00,0.00
        """,
        """
        B,X,R0,10,2024-02-28,2024-02-28,420.00,0.00
        B,X,R1,10,2024-02-29,2023-12-03,510.00,100.00
        """,
        id="the 30-day window counts february 29",
    ),
    # ---- competing losses, fractional replacements, half cents (Treas. Reg. §1.1091-1(c)) ----
    pytest.param(
        # L1 basis 3 × 33.33 = 99.99, loss 99.99 - 60 = 39.99; L2 100.02, loss 40.02; both
        # held 2024-01-02 -> 03-01 = 59 days.  R (2.5 × 20.01 = 50.025 -> 50.03) before the
        # sales goes to the first loss: 39.99 × 2.5/3 = 33.325 -> 33.33; R 83.36, acquired
        # 2024-02-15 - 59 = 2023-12-18.  R2 (1.25 × 21 = 26.25, 03-10): L1's last 0.5 sh:
        # 39.99 - 33.33 = 6.66 on 26.25 × 0.5/1.25 = 10.50 -> 17.16; the other 0.75 sh
        # (15.75) go to L2: 40.02 × 0.75/3 = 10.005 -> 10.01, 25.76; both acquired
        # 2024-03-10 - 59 = 2024-01-11.  R3 (10 × 22, 03-31 = day 30): L2's last 2.25 sh:
        # 40.02 - 10.01 = 30.01 on 220 × 2.25/10 = 49.50 -> 79.51, acquired 03-31 - 59 =
        # 2024-02-01; 7.75 sh keep 170.50.  Each loss is disallowed whole, to the cent.
        """
        t1,2024-01-02,A,taxable,X,buy,3,33.33,L1
        t2,2024-01-02,B,taxable,X,buy,3,33.34,L2
        t3,2024-02-15,C,taxable,X,buy,2.5,20.01,R
        t4,2024-03-01,A,taxable,X,sell,3,20,L1
        t5,2024-03-01,B,taxable,X,sell,3,20,L2
        t6,2024-03-10,C,taxable,X,buy,1.25,21,R2
        t7,2024-03-31,C,taxable,X,buy,10,22,R3
        """,
        (),
        """
        t4,2024-03-01,A,X,L1,3,2024-01-02,short,60.00,99.99,W,39.99,0.00,0.00
        t5,2024-03-01,B,X,L2,3,2024-01-02,short,60.00,100.02,W,40.02,0.00,0.00
        """,
        """
        C,X,R,2.5,2024-02-15,2023-12-18,83.36,33.33
        C,X,R2,0.5,2024-03-10,2024-01-11,17.16,6.66
        C,X,R2,0.75,2024-03-10,2024-01-11,25.76,10.01
        C,X,R3,2.25,2024-03-31,2024-02-01,79.51,30.01
        C,X,R3,7.75,2024-03-31,2024-03-31,170.50,0.00
        """,
        id="two losses share fractional replacements in order and each is disallowed to the cent",
    ),
    pytest.param(
        # Large amounts with a long fractional share count: 179.0402906275541 × 69736000.03 =
        # 12,485,553,712.5743... -> basis 12,485,553,712.57.  Selling exactly half the shares
        # relieves 12,485,553,712.57 / 2 = 6,242,776,856.285 -> 6,242,776,856.29 (half up,
        # rounded once); the other half keeps 6,242,776,856.28.  Proceeds 89.52014531377705 ×
        # 69736001 = 6,242,776,943.1217... -> 6,242,776,943.12; gain 86.83.
        """
        t1,2024-01-02,A,taxable,X,buy,179.0402906275541,69736000.03,L1
        t2,2024-02-01,A,taxable,X,sell,89.52014531377705,69736001,L1
        """,
        (),
        """
        t2,2024-02-01,A,X,L1,89.52014531377705,2024-01-02,short,6242776943.12,6242776856.29,,0.00,0.00,86.83
        """,
        """
        A,X,L1,89.52014531377705,2024-01-02,2024-01-02,6242776856.28,0.00
        """,
        id="a pro rata basis is rounded half up once even when its product has over 28 digits",
    ),
    # ---- identical groups and spelling (IRS Pub. 550 "substantially identical") ---------------
    pytest.param(
        # 'spy=voo;VOO=ivv' is one group {SPY, VOO, IVV}; tickers in any case.  Loss 500, held
        # 59 days.  IVV 4 sh (B): 500 × 4/10 = 200, 1820 + 200 = 2020, acquired 2024-03-05 -
        # 59 = 2024-01-06.  VOO 6 sh in the IRA: the other 300, for good.
        """
        t1,2024-01-02,A,taxable,spy,buy,10,500,L1
        t2,2024-03-01,A,taxable,SPY,sell,10,450,L1
        t3,2024-03-05,B,taxable,Ivv,buy,4,455,L2
        t4,2024-03-06,I,ira,voo,buy,6,420,L3
        """,
        ("--identical", "spy=voo;VOO=ivv"),
        """
        t2,2024-03-01,A,SPY,L1,10,2024-01-02,short,4500.00,5000.00,W,500.00,300.00,0.00
        """,
        """
        B,IVV,L2,4,2024-03-05,2024-01-06,2020.00,200.00
        """,
        id="a three-way group given in lower case washes across accounts and an ira",
    ),
    # ---- lot methods (Treas. Reg. §1.1012-1(c)) ------------------------------------------------
    pytest.param(
        # HIFO: L2 (120/sh) first, then a tie between L1 and L3 (100/sh) broken first in, first
        # out: L1.  Proceeds 15 × 130 = 1950: L2 10/15 -> 1300.00, L1 650.00.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-01-10,A,taxable,X,buy,10,120,L2
        t3,2024-01-20,A,taxable,X,buy,10,100,L3
        t4,2024-02-01,A,taxable,X,sell,15,130,
        """,
        ("--lot-method", "hifo"),
        """
        t4,2024-02-01,A,X,L2,10,2024-01-10,short,1300.00,1200.00,,0.00,0.00,100.00
        t4,2024-02-01,A,X,L1,5,2024-01-02,short,650.00,500.00,,0.00,0.00,150.00
        """,
        """
        A,X,L1,5,2024-01-02,2024-01-02,500.00,0.00
        A,X,L3,10,2024-01-20,2024-01-20,1000.00,0.00
        """,
        id="hifo breaks a tie in basis per share first in first out",
    ),
    pytest.param(
        # L3 (6 sh, 60.00) and L1 (3 sh, 30.00) cost 10.00 a share each: a tie whatever the lot
        # size; FIFO takes L1 whole, then 1 of L3's 6: 60 × 1/6 = 10.00.
        """
        t1,2024-01-02,A,taxable,X,buy,3,10,L1
        t2,2024-01-03,A,taxable,X,buy,6,10,L3
        t3,2024-02-01,A,taxable,X,sell,4,12,
        """,
        ("--lot-method", "hifo"),
        """
        t3,2024-02-01,A,X,L1,3,2024-01-02,short,36.00,30.00,,0.00,0.00,6.00
        t3,2024-02-01,A,X,L3,1,2024-01-03,short,12.00,10.00,,0.00,0.00,2.00
        """,
        """
        A,X,L3,5,2024-01-03,2024-01-03,50.00,0.00
        """,
        id="hifo ties between lots of different sizes go first in first out",
    ),
]


@pytest.mark.parametrize(("tx", "extra", "sales", "lots"), CASES)
def test_the_realized_report_matches_the_hand_computed_household(
    tmp_path: Path, tx: str, extra: tuple[str, ...], sales: str, lots: str
) -> None:
    rc, sales_path, lots_path = _run(tmp_path, tx, *extra)
    assert rc == 0
    assert _read(sales_path, SALES_HEADER) == _rows(sales)
    assert _read(lots_path, LOTS_HEADER) == _rows(lots)


def test_the_summary_reports_a_december_wash_in_its_year_and_the_chain_in_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2023: L1 loss 100 fully deferred -> short-term 0.00, deferred 100.00.
    # 2024: L2 loss 160 deferred (0.00), L3 sold +40 short and +40 long; deferred 160.00.
    # Total: 40.00, 40.00, 260.00, 0.00 (the chain case above).
    tx = """
        t1,2023-03-01,A,taxable,X,buy,10,50,L1
        t2,2023-12-01,A,taxable,X,sell,10,40,L1
        t3,2023-12-10,A,taxable,X,buy,10,41,L2
        t4,2024-01-05,A,taxable,X,sell,10,35,L2
        t5,2024-01-25,A,taxable,X,buy,10,36,L3
        t6,2024-03-30,A,taxable,X,sell,5,60,L3
        t7,2024-03-31,A,taxable,X,sell,5,60,L3
        """
    assert _run(tmp_path, tx)[0] == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines()[1:4]]
    assert table == [
        ["2023", "0.00", "0.00", "100.00", "0.00"],
        ["2024", "40.00", "40.00", "160.00", "0.00"],
        ["total", "40.00", "40.00", "260.00", "0.00"],
    ]


def test_the_summary_splits_deferred_from_permanently_disallowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The three-way identical case: 500 disallowed, 300 of it for good (IRA), 200 deferred;
    # the reported short-term gain is 0.00.
    tx = """
        t1,2024-01-02,A,taxable,spy,buy,10,500,L1
        t2,2024-03-01,A,taxable,SPY,sell,10,450,L1
        t3,2024-03-05,B,taxable,Ivv,buy,4,455,L2
        t4,2024-03-06,I,ira,voo,buy,6,420,L3
        """
    assert _run(tmp_path, tx, "--identical", "spy=voo;VOO=ivv")[0] == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["2024", "0.00", "0.00", "200.00", "300.00"]
    assert not out[2].strip()  # one year: no total row


BAD = [
    pytest.param(
        # L1 was sold out on 2024-02-01; naming it again is an unknown lot, not a silent FIFO.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-01-03,A,taxable,X,buy,10,100,L2
        t3,2024-02-01,A,taxable,X,sell,10,90,L1
        t4,2024-02-02,A,taxable,X,sell,1,90,L1
        """,
        "t4",
        "lot_id",
        id="a sell naming a lot already sold out",
    ),
    pytest.param(
        # The account holds 10 long and is short 10: selling 11 long is more than held.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-01-03,A,taxable,X,short,10,100,S1
        t3,2024-02-01,A,taxable,X,sell,11,90,
        """,
        "t3",
        "quantity",
        id="a sell of more than the long lots hold while a short is open",
    ),
    pytest.param(
        # The IRA's lot id does not exist in the taxable account.
        """
        t1,2024-01-02,I,ira,X,buy,10,100,L1
        t2,2024-01-03,A,taxable,X,buy,10,100,L2
        t3,2024-02-01,A,taxable,X,sell,1,90,L1
        """,
        "t3",
        "lot_id",
        id="a sell naming another account's lot",
    ),
    pytest.param(
        # A split lot's parts together hold 10; 11 is more than the named lot holds.
        """
        t1,2024-01-02,A,taxable,X,buy,10,100,L1
        t2,2024-02-01,A,taxable,X,sell,10,90,L1
        t3,2024-02-05,A,taxable,X,buy,20,91,L2
        t4,2024-02-06,A,taxable,X,sell,21,92,L2
        """,
        "t4",
        "quantity",
        id="a sell of more than the parts of a split lot hold",
    ),
]


@pytest.mark.parametrize(("tx", "row", "field"), BAD)
def test_a_bad_row_names_the_row_and_field_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tx: str, row: str, field: str
) -> None:
    rc, sales_path, lots_path = _run(tmp_path, tx)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"taxview: error: row {row}, field {field}: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not sales_path.exists() and not lots_path.exists()


def test_a_row_missing_its_trailing_cell_is_refused_not_read_as_an_empty_lot_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fuzz audit: `t3,...,sell,10,80` (no trailing comma) was read with an empty lot_id, and
    # FIFO relieved L1 (a gain) instead of the L2 the writer meant (a loss).
    tx = """
    t1,2024-01-02,A,taxable,X,buy,10,70,L1
    t2,2024-02-01,A,taxable,X,buy,10,100,L2
    t3,2024-03-01,A,taxable,X,sell,10,80
    """
    rc, sales_path, lots_path = _run(tmp_path, tx)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("taxview: error: row t3, field lot_id: the row has 8 fields")
    assert err.count("\n") == 1
    assert not sales_path.exists() and not lots_path.exists()
