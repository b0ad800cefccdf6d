"""The benchmark's order mix and the venues it trades on, shared by every mode.

One place defines what the load generator sends and what the venues (the
``fixgw venue-sim`` processes of modes B and C, and mode A's executor, which
answers like them) do with it, so every mode sees the same flow:

====  ====  ======  =========================================================  ==================
kind  share symbol  order                                                      client sees
====  ====  ======  =========================================================  ==================
M     70%   AAPL    marketable limit buy, 100-399 shares (VENUE1, FIX.4.4)     New, 1 fill
M2    5%    AAPL    marketable limit buy, 600-899 shares: two levels           New, 2 fills
MI    10%   IBM     marketable limit buy, 100-299 shares (VENUE2, FIX.4.2)     New, 1 fill
R     10%   MSFT    resting limit buy; replaced (qty +1000) once New, then      New, Replaced,
                    canceled once Replaced                                     Canceled
X     5%    REJ     limit buy of a symbol the venue rejects (reject_symbols)   Rejected
====  ====  ======  =========================================================  ==================

Kinds are dealt in shuffled blocks of 20 (seeded), so any 20 consecutive orders
hold exactly that mix. Quantity and price cycle per kind so that no two orders
within the risk chain's 1 s duplicate window are alike below 8,000 orders/s.
Every order is a buy (no limit on position is configured). ``--mix marketable``
sends kind M only (the flow of the first benchmark, for comparison).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

# The venues as the bench configures them (gateway config, venue-sim, mode A's executor).
# name -> (FIX version, symbols, reference prices, half spread in ticks, level size, rejected symbols)
VENUES = {
    "VENUE1": ("FIX.4.4", ("AAPL", "MSFT"), {"AAPL": "190.00", "MSFT": "410.00"}, 1, 500, ()),
    "VENUE2": ("FIX.4.2", ("IBM", "REJ"), {"IBM": "230.05", "REJ": "10.00"}, 2, 300, ("REJ",)),
}
TICK = Decimal("0.01")
DEPTH = 5
REFERENCE_PRICES = {s: p for _, _, prices, *_ in VENUES.values() for s, p in prices.items()}


def venue_sections(ports: dict[str, int], extra: str = "") -> str:
    """The bench's venues as gateway.cfg sections, each with its simulator; ``ports``: venue name -> port,
    ``extra``: more lines for each venue's table (``heartbeat_s = 1``)."""
    out = []
    for name, (version, symbols, prices, half, size, rejects) in VENUES.items():
        out.append(f"""
[venues.{name}]
fix_version = "{version}"
port = {ports[name]}
symbols = [{", ".join(f'"{s}"' for s in symbols)}]
reconnect_s = 1
{extra}[venues.{name}.simulator]
prices = {{ {", ".join(f"{s} = {p}" for s, p in prices.items())} }}
half_spread_ticks = {half}
level_size = {size}
reject_symbols = [{", ".join(f'"{s}"' for s in rejects)}]
""")
    return "".join(out)

BLOCK = ["M"] * 14 + ["M2"] + ["MI"] * 2 + ["R"] * 2 + ["X"]
KINDS = ("M", "M2", "MI", "R", "X")
FILLS = {"M": 1, "M2": 2, "MI": 1, "R": 0, "X": 0}  # fills the client gets per order


@dataclass(frozen=True, slots=True)
class Spec:
    kind: str
    symbol: str
    qty: int
    price: str

    @property
    def replace_qty(self) -> int:
        return self.qty + 1000


def asks(venue: str) -> dict[str, list[tuple[Decimal, int]]]:
    """symbol -> [(price, size)] of the synthetic ask levels, best first, as venue-sim builds them."""
    _, symbols, prices, half, size, _ = VENUES[venue]
    return {s: [(Decimal(prices[s]) + TICK * (half + i), size * (i + 1)) for i in range(DEPTH)] for s in symbols}


MIXES = {"mix": BLOCK, "marketable": ["M"]}


class Mix:
    """An endless, deterministic sequence of order specs: ``mix`` (the table above) or ``marketable`` (M only)."""

    def __init__(self, seed: int = 8, name: str = "mix"):
        self._rng = random.Random(seed)
        self._kinds = MIXES[name]
        self._block: list[str] = []
        self._n = dict.fromkeys(KINDS, 0)

    def next(self) -> Spec:
        if not self._block:
            self._block = self._kinds[:]
            self._rng.shuffle(self._block)
        kind = self._block.pop()
        n = self._n[kind]
        self._n[kind] = n + 1
        if kind == "M":
            return Spec(kind, "AAPL", 100 + n % 300, f"190.{5 + (n // 300) % 40:02d}")
        if kind == "M2":
            return Spec(kind, "AAPL", 600 + n % 300, f"190.{5 + (n // 300) % 40:02d}")
        if kind == "MI":
            return Spec(kind, "IBM", 100 + n % 200, f"230.{10 + (n // 200) % 40:02d}")
        if kind == "R":
            cents = (n // 100) % 500
            return Spec(kind, "MSFT", 100 + n % 100, f"{400 + cents // 100}.{cents % 100:02d}")
        cents = (n // 100) % 100
        return Spec(kind, "REJ", 100 + n % 100, f"{9 + (50 + cents) // 100}.{(50 + cents) % 100:02d}")
