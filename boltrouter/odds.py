"""Odds math: American, decimal and implied probability; margins, no-vig, value, arbitrage.

American odds are what the feed sends (strings such as ``"+150"`` or ``"-110"``).
Decimal odds are the total return per unit staked (``+150`` -> 2.5, ``-110`` ->
1.909); the implied probability is ``1 / decimal``. Every function that reads
upstream input returns None for anything that is not a usable price instead of
raising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_EVEN = frozenset({"even", "evens", "ev", "pk", "pick"})
_SUSPENDED = frozenset({"", "none", "null", "nan", "n/a", "na", "-", "off", "suspended"})


# --- conversions -------------------------------------------------------------------

def parse_american(value: Any) -> float | None:
    """The American odds in ``value`` as a number, or None when it is no price.

    Accepts ``"+150"``, ``"150"``, ``"-110"``, ``"EVEN"``, ints and floats.
    ``None``, ``''``, ``"None"`` (suspended) and anything between -100 and +100
    exclusive (not a valid American price) give None. Never raises.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        low = text.lower()
        if low in _SUSPENDED:
            return None
        if low in _EVEN:
            return 100.0
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or -100.0 < number < 100.0:
        return None
    return number


def american_to_decimal(american: float) -> float:
    """``+150`` -> 2.5, ``-200`` -> 1.5, ``+100`` and ``-100`` -> 2.0."""
    if american >= 100.0:
        return 1.0 + american / 100.0
    if american <= -100.0:
        return 1.0 + 100.0 / -american
    raise ValueError(f"{american!r} is not an American price (it must be <= -100 or >= +100)")


def decimal_to_american(decimal: float) -> float:
    """2.5 -> +150, 1.5 -> -200, 2.0 -> +100."""
    if not decimal > 1.0:
        raise ValueError(f"{decimal!r} is not a decimal price (it must be greater than 1)")
    if decimal >= 2.0:
        return (decimal - 1.0) * 100.0
    return -100.0 / (decimal - 1.0)


def decimal_to_prob(decimal: float) -> float:
    return 1.0 / decimal


def prob_to_decimal(prob: float) -> float:
    if not 0.0 < prob < 1.0:
        raise ValueError(f"{prob!r} is not a probability strictly between 0 and 1")
    return 1.0 / prob


def american_to_prob(american: float) -> float:
    """Implied probability of an American price: ``-110`` -> 0.5238."""
    return 1.0 / american_to_decimal(american)


def prob_to_american(prob: float) -> float:
    return decimal_to_american(prob_to_decimal(prob))


def format_american(american: float) -> str:
    """The usual spelling of an American price, rounded to a whole number: ``"+150"``."""
    whole = round(american)
    return f"+{whole}" if whole > 0 else str(whole)


def odds_to_decimal(value: Any) -> float | None:
    """Decimal price of upstream American odds (string or number), None if no price."""
    american = parse_american(value)
    return None if american is None else american_to_decimal(american)


def odds_to_prob(value: Any) -> float | None:
    """Implied probability of upstream American odds, None if no price."""
    american = parse_american(value)
    return None if american is None else 1.0 / american_to_decimal(american)


# --- margins and fair probabilities --------------------------------------------------

def overround(decimals: Sequence[float]) -> float:
    """Sum of the implied probabilities of every side of a market (1.0 = no margin)."""
    return sum(1.0 / d for d in decimals)


def vig(decimals: Sequence[float]) -> float:
    """The book's margin (hold) on a balanced book: ``1 - 1 / overround``.

    -110/-110 gives 0.0455. Negative when the prices together imply less than 100 %.
    """
    return 1.0 - 1.0 / overround(decimals)


def no_vig(probs: Sequence[float], method: str = "multiplicative") -> list[float]:
    """Fair probabilities from the implied probabilities of all sides of one market.

    ``multiplicative`` divides each by their sum; ``power`` finds k with
    ``sum(p ** k) == 1`` (takes more margin off long shots); ``shin`` uses Shin's
    model of insider trading (also favourite-longshot aware). All results sum to 1.
    """
    if not probs:
        return []
    if any(not 0.0 < p < 1.0 for p in probs):
        raise ValueError("every implied probability must be strictly between 0 and 1")
    if method == "multiplicative" or len(probs) == 1:
        total = sum(probs)
        return [p / total for p in probs]
    if method == "power":
        return _no_vig_power(probs)
    if method == "shin":
        return _no_vig_shin(probs)
    raise ValueError(f"unknown no-vig method {method!r} (valid: multiplicative, power, shin)")


NO_VIG_METHODS = ("multiplicative", "power", "shin")


def _bisect(f: Any, lo: float, hi: float, iterations: int = 80) -> float:
    """Root of a decreasing function on [lo, hi]."""
    for _ in range(iterations):
        mid = (lo + hi) / 2.0
        if f(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _no_vig_power(probs: Sequence[float]) -> list[float]:
    # sum(p ** k) decreases in k; k > 1 removes a margin, k < 1 adds one back.
    k = _bisect(lambda k: sum(p ** k for p in probs) - 1.0, 1e-3, 1e3)
    fair = [p ** k for p in probs]
    total = sum(fair)
    return [p / total for p in fair]


def _shin_probs(probs: Sequence[float], booksum: float, z: float) -> list[float]:
    return [(math.sqrt(z * z + 4.0 * (1.0 - z) * p * p / booksum) - z) / (2.0 * (1.0 - z))
            for p in probs]


def _no_vig_shin(probs: Sequence[float]) -> list[float]:
    booksum = sum(probs)
    if booksum <= 1.0:  # no margin to explain by insiders: fall back to normalising
        return [p / booksum for p in probs]
    z = _bisect(lambda z: sum(_shin_probs(probs, booksum, z)) - 1.0, 0.0, 0.999999)
    fair = _shin_probs(probs, booksum, z)
    total = sum(fair)
    return [p / total for p in fair]


# --- value ---------------------------------------------------------------------------

def expected_value(decimal: float, fair_prob: float) -> float:
    """Expected profit per unit staked at ``decimal`` when the true chance is ``fair_prob``."""
    return fair_prob * decimal - 1.0


def kelly(decimal: float, fair_prob: float) -> float:
    """Kelly fraction of the bankroll to stake (0 when the bet has no edge)."""
    if decimal <= 1.0:
        return 0.0
    return max(0.0, (fair_prob * decimal - 1.0) / (decimal - 1.0))


@dataclass(frozen=True, slots=True)
class Arbitrage:
    """Stakes on every side of a market that return the same payout whatever wins."""

    implied: float          # sum of 1/decimal over the sides; < 1 means a sure profit
    stakes: tuple[float, ...]
    payout: float           # returned on whichever side wins
    profit: float           # payout - bankroll
    profit_pct: float       # profit as a fraction of the bankroll (0.02 = 2 %)


def arbitrage(decimals: Sequence[float], bankroll: float = 100.0) -> Arbitrage:
    """Split ``bankroll`` across the sides so every outcome pays the same.

    Stake on side i is ``bankroll / (d_i * S)`` with ``S = sum(1/d)``; the payout
    is ``bankroll / S``. When ``S >= 1`` the profit is zero or negative (no arb).
    """
    if not decimals or any(not d > 1.0 for d in decimals):
        raise ValueError("arbitrage needs at least one decimal price, each greater than 1")
    implied = overround(decimals)
    payout = bankroll / implied
    stakes = tuple(bankroll / (d * implied) for d in decimals)
    return Arbitrage(implied, stakes, payout, payout - bankroll, 1.0 / implied - 1.0)


# --- markets -------------------------------------------------------------------------

DRAW_NAMES = frozenset({"draw", "tie", "x"})
_OVER = frozenset({"over", "o"})
_UNDER = frozenset({"under", "u"})


def normalize_over_under(value: Any) -> str | None:
    """``Over``/``O`` -> ``"Over"``, ``Under``/``U`` -> ``"Under"``, anything else None."""
    if not isinstance(value, str):
        return None
    low = value.strip().lower()
    if low in _OVER:
        return "Over"
    if low in _UNDER:
        return "Under"
    return None


def parse_line(value: Any) -> float | None:
    """A handicap or total line as a number: ``"+3.5"`` -> 3.5, ``"PK"`` -> 0.0."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if text.lower() in _EVEN:
            return 0.0
        try:
            number = float(text)
        except ValueError:
            return None
    if not math.isfinite(number):
        return None
    return number + 0.0  # -0.0 -> 0.0, so "-0" and "0" are the same line


def teams_of(game: str | None) -> tuple[str | None, str | None]:
    """Home and away team from a game name ``"Home vs Away, YYYY-MM-DD, HH"``."""
    if not game:
        return None, None
    teams = game.split(",", 1)[0]
    home, sep, away = teams.partition(" vs ")
    if not sep:
        return None, None
    return home.strip() or None, away.strip() or None


@dataclass(frozen=True, slots=True)
class Selection:
    """Where one outcome belongs: its market within a game, and which side of it.

    ``kind`` is ``moneyline`` (sides home, away and maybe draw), ``spread`` (home
    and away on the same handicap: home -3.5 pairs with away +3.5), ``total``
    (over and under of the same line) or ``other`` (any market whose sides cannot
    be told apart safely; never used for arbitrage or fair odds).
    """

    market_key: tuple[Any, ...]
    side: str
    kind: str


def _fold(value: Any) -> str:
    return str(value).strip().casefold() if value is not None else ""


def selection_of(market: Any, target: Any, line: Any, over_under: Any,
                 home: str | None, away: str | None) -> Selection:
    """Group an outcome into its market: the same market key for every side of it.

    Totals are grouped by line and ``O``/``Over`` are the same side; spreads are
    grouped by the line as seen from the home team, so ``home -3.5`` and
    ``away +3.5`` are the two sides of one market while ``away +4.5`` is another.
    """
    name = _fold(market)
    who = _fold(target)
    ou = normalize_over_under(over_under)
    number = parse_line(line)
    if ou is not None:
        if number is not None:
            return Selection((name, "total", who, number), ou.lower(), "total")
        return Selection((name, "other", _fold(line), ou), who, "other")
    side = ("home" if who and who == _fold(home) else
            "away" if who and who == _fold(away) else
            "draw" if who in DRAW_NAMES else "")
    if side and (line is None or line == ""):
        return Selection((name, "moneyline"), side, "moneyline")
    if side in ("home", "away") and number is not None:
        home_line = number if side == "home" else -number + 0.0
        return Selection((name, "spread", home_line), side, "spread")
    return Selection((name, "other", _fold(line), None), who, "other")
