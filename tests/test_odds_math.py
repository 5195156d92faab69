"""Odds math: conversions, margins, fair probabilities, value, arbitrage, market grouping."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from boltrouter.odds import (
    american_to_decimal,
    american_to_prob,
    arbitrage,
    decimal_to_american,
    decimal_to_prob,
    expected_value,
    format_american,
    kelly,
    no_vig,
    normalize_over_under,
    odds_to_decimal,
    odds_to_prob,
    overround,
    parse_american,
    parse_line,
    prob_to_american,
    prob_to_decimal,
    selection_of,
    vig,
)
from boltrouter.rules.market import GameBook, Market

HOME, AWAY = "Los Angeles Lakers", "Denver Nuggets"

# whole American prices as books quote them: -100000..-100 and +100..+100000
whole_american = st.one_of(st.integers(100, 100_000), st.integers(-100_000, -100))
any_american = st.one_of(st.floats(100, 1e5), st.floats(-1e5, -100))
decimals = st.floats(1.001, 1000.0)
probs = st.floats(0.001, 0.999)


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# --- conversions -------------------------------------------------------------------------

@given(whole_american)
def test_a_whole_american_price_survives_the_round_trip_through_decimal(american: int) -> None:
    back = decimal_to_american(american_to_decimal(american))
    if american == -100:
        assert back == 100.0  # -100 and +100 are both even money
    else:
        assert close(back, american)
        assert format_american(back) == (f"+{american}" if american > 0 else str(american))


@given(any_american)
def test_american_decimal_and_probability_agree_for_both_signs(american: float) -> None:
    decimal = american_to_decimal(american)
    prob = american_to_prob(american)
    assert decimal >= 2.0 if american > 0 else decimal <= 2.0
    assert close(prob, 1.0 / decimal)
    assert close(decimal_to_prob(decimal), prob)
    assert close(prob_to_decimal(prob), decimal)
    assert close(american_to_prob(prob_to_american(prob)), prob)
    # a favourite (negative) risks |american| to win 100; an underdog risks 100 to win american
    profit_per_unit = decimal - 1.0
    assert close(profit_per_unit, american / 100.0 if american > 0 else 100.0 / -american)


@given(st.integers(100, 100_000))
def test_a_price_reads_the_same_with_and_without_its_plus_sign(american: int) -> None:
    assert parse_american(f"+{american}") == parse_american(str(american)) == float(american)
    assert parse_american(f" +{american} ") == float(american)
    assert parse_american(f"-{american}") == -float(american)
    assert odds_to_decimal(f"+{american}") == odds_to_decimal(american)


@given(whole_american, whole_american)
def test_a_higher_american_price_pays_more_and_is_less_likely(a: int, b: int) -> None:
    assume(a != b)
    low, high = sorted((a, b))
    assume(not (low == -100 and high == 100))
    assert american_to_decimal(high) > american_to_decimal(low)
    assert american_to_prob(high) < american_to_prob(low)


@pytest.mark.parametrize("even", ["+100", "-100", "100", 100, -100, "EVEN", "even", "PK"])
def test_even_money_is_two_in_decimal_and_a_half_in_probability(even: object) -> None:
    assert odds_to_decimal(even) == 2.0
    assert odds_to_prob(even) == 0.5


@pytest.mark.parametrize(("odds", "decimal", "prob"), [
    ("-110", 1.909091, 0.52381), ("+150", 2.5, 0.4), ("-200", 1.5, 0.666667),
    ("+300", 4.0, 0.25), ("-400", 1.25, 0.8), (-125.0, 1.8, 0.555556),
])
def test_known_prices_convert_as_a_bettor_expects(odds: object, decimal: float,
                                                 prob: float) -> None:
    assert round(odds_to_decimal(odds) or 0, 6) == decimal
    assert round(odds_to_prob(odds) or 0, 6) == prob


@pytest.mark.parametrize("not_a_price", [
    None, "", "None", "none", "null", " ", "abc", "+50", "-99", 0, 99.5, "nan", "inf",
    float("nan"), float("inf"), True, [], {},
])
def test_a_suspended_or_malformed_price_is_no_price_and_never_raises(not_a_price: object) -> None:
    assert parse_american(not_a_price) is None
    assert odds_to_decimal(not_a_price) is None
    assert odds_to_prob(not_a_price) is None


def test_impossible_values_are_refused_with_what_would_be_valid() -> None:
    with pytest.raises(ValueError, match="<= -100 or >= \\+100"):
        american_to_decimal(50)
    with pytest.raises(ValueError, match="greater than 1"):
        decimal_to_american(1.0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        prob_to_decimal(1.0)


# --- margins and fair probabilities ------------------------------------------------------

def test_the_margin_of_a_minus_110_pair_is_the_familiar_4_5_percent() -> None:
    d = american_to_decimal(-110)
    assert round(overround([d, d]), 6) == 1.047619
    assert round(vig([d, d]), 6) == 0.045455
    assert no_vig([1 / d, 1 / d]) == [0.5, 0.5]


@given(st.lists(probs, min_size=2, max_size=6), st.floats(0.0, 0.15))
def test_fair_probabilities_sum_to_one_and_keep_the_order_of_the_sides(
        fair: list[float], margin: float) -> None:
    total = sum(fair)
    fair = [p / total for p in fair]
    assume(all(0.01 < p < 0.95 for p in fair))
    implied = [p * (1 + margin) for p in fair]
    assume(all(p < 1 for p in implied))
    assert close(overround([1 / p for p in implied]), 1 + margin, 1e-9)
    for method in ("multiplicative", "power", "shin"):
        out = no_vig(implied, method)
        assert close(sum(out), 1.0, 1e-9), method
        for i in range(len(out)):
            for j in range(len(out)):
                if implied[i] > implied[j] + 1e-9:
                    assert out[i] >= out[j] - 1e-12, method
    # multiplicative keeps the ratios: a margin spread evenly is removed exactly
    assert all(close(a, b, 1e-9) for a, b in zip(no_vig(implied), fair))


@given(probs, st.floats(0.01, 0.12))
def test_power_and_shin_take_more_margin_off_the_long_shot(p_fav: float,
                                                           margin: float) -> None:
    assume(0.55 < p_fav < 0.95)
    implied = [p_fav * (1 + margin), (1 - p_fav) * (1 + margin)]
    assume(implied[0] < 1)
    mult = no_vig(implied)
    for method in ("power", "shin"):
        fav, dog = no_vig(implied, method)
        assert fav >= mult[0] - 1e-9, method
        assert dog <= mult[1] + 1e-9, method


@given(st.lists(probs, min_size=2, max_size=5))
def test_a_market_without_margin_is_already_fair(raw: list[float]) -> None:
    total = sum(raw)
    fair = [p / total for p in raw]
    assume(all(0.001 < p < 0.999 for p in fair))
    for method in ("multiplicative", "power", "shin"):
        assert all(close(a, b, 1e-6) for a, b in zip(no_vig(fair, method), fair)), method


def test_no_vig_refuses_what_is_not_a_probability_and_names_the_methods() -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        no_vig([0.5, 1.2])
    with pytest.raises(ValueError, match="multiplicative, power, shin"):
        no_vig([0.55, 0.5], "magic")
    assert no_vig([]) == []


# --- value -------------------------------------------------------------------------------

@given(decimals, probs)
def test_expected_value_is_positive_exactly_when_the_price_beats_the_fair_odds(
        decimal: float, fair: float) -> None:
    ev = expected_value(decimal, fair)
    assert close(ev, fair * (decimal - 1) - (1 - fair), 1e-9)
    fair_decimal = 1 / fair
    if decimal > fair_decimal * (1 + 1e-9):
        assert ev > 0
        assert 0 < kelly(decimal, fair) <= fair
    elif decimal < fair_decimal * (1 - 1e-9):
        assert ev < 0
        assert kelly(decimal, fair) == 0.0


def test_a_fair_price_has_no_value_and_a_known_edge_reads_right() -> None:
    assert expected_value(2.0, 0.5) == 0.0
    assert round(expected_value(2.2, 0.5), 6) == 0.1          # +120 on a coin flip: 10 %
    assert round(kelly(2.2, 0.5), 6) == round(0.1 / 1.2, 6)


# --- arbitrage ---------------------------------------------------------------------------

@given(st.lists(decimals, min_size=2, max_size=4), st.floats(1.0, 1e6))
def test_arbitrage_stakes_use_the_whole_bankroll_and_pay_the_same_whoever_wins(
        prices: list[float], bankroll: float) -> None:
    arb = arbitrage(prices, bankroll)
    assert close(sum(arb.stakes), bankroll, 1e-9)
    for stake, price in zip(arb.stakes, prices):
        assert close(stake * price, arb.payout, 1e-9)
    assert close(arb.profit, arb.payout - bankroll, 1e-6)
    assert (arb.profit > 0) == (overround(prices) < 1)
    assert close(arb.implied, overround(prices))


def test_a_two_book_arbitrage_splits_a_bankroll_of_100_as_expected() -> None:
    arb = arbitrage([american_to_decimal(110), american_to_decimal(105)], 100.0)
    assert [round(s, 2) for s in arb.stakes] == [49.4, 50.6]
    assert round(arb.payout, 2) == 103.73
    assert round(arb.profit_pct * 100, 2) == 3.73


def test_arbitrage_refuses_a_price_that_is_not_decimal() -> None:
    with pytest.raises(ValueError, match="greater than 1"):
        arbitrage([2.1, 1.0])


# --- markets -----------------------------------------------------------------------------

def select(market: str, target: str | None, line: object = None,
           over_under: str | None = None) -> tuple[tuple[object, ...], str, str]:
    s = selection_of(market, target, line, over_under, HOME, AWAY)
    return s.market_key, s.side, s.kind


@given(st.sampled_from(["Over", "O", "over", " o ", "OVER"]),
       st.sampled_from(["Under", "U", "under", "u"]),
       st.integers(150, 260).map(lambda n: n + 0.5))
def test_over_and_o_are_the_same_side_of_one_total(over: str, under: str,
                                                   total: float) -> None:
    o_key, o_side, kind = select("Total", "Lakers vs Nuggets", str(total), over)
    u_key, u_side, _ = select("Total", "Lakers vs Nuggets", f"{total:g}", under)
    assert (o_side, u_side, kind) == ("over", "under", "total")
    assert o_key == u_key
    assert o_key == select("Total", "Lakers vs Nuggets", total, "Over")[0]


def test_over_under_on_different_lines_are_different_markets() -> None:
    assert select("Total", "g", "220.5", "Over")[0] != select("Total", "g", "221.5", "Under")[0]
    # a player prop is its own market per player and line
    assert select("Points", "LeBron James", "25.5", "O")[0] != \
        select("Points", "Nikola Jokic", "25.5", "U")[0]
    assert normalize_over_under("O") == normalize_over_under("Over") == "Over"
    assert normalize_over_under("Draw") is None


def test_two_way_and_three_way_moneylines_group_home_away_and_draw() -> None:
    home, away, draw = (select("Moneyline", t) for t in (HOME, AWAY, "Draw"))
    assert home[0] == away[0] == draw[0] == ("moneyline", "moneyline")
    assert [home[1], away[1], draw[1]] == ["home", "away", "draw"]
    assert select("Moneyline", "los angeles lakers ")[1] == "home"    # case and spaces
    assert select("Moneyline", "Tie")[1] == "draw"


def test_spread_sides_pair_by_the_handicap_seen_from_home() -> None:
    home = select("Spread", HOME, "-3.5")
    away = select("Spread", AWAY, "+3.5")
    other = select("Spread", AWAY, "+4.5")
    assert home[0] == away[0] != other[0]
    assert (home[1], away[1], home[2]) == ("home", "away", "spread")
    assert select("Spread", HOME, "PK")[0] == select("Spread", AWAY, "0")[0]
    assert parse_line("-0") == 0.0 and parse_line("+3.5") == 3.5 and parse_line("x") is None


def test_an_outcome_whose_side_cannot_be_told_is_kept_apart() -> None:
    assert select("Moneyline", "Someone Else")[2] == "other"
    assert select("First Basket", "LeBron James", "+3.5")[2] == "other"


def test_a_market_is_complete_only_with_every_side_a_bettor_must_cover() -> None:
    gb = GameBook("g", "NBA", HOME, AWAY, None)
    two_way = Market(("moneyline", "moneyline"), "moneyline", "moneyline")
    two_way.sides = {"home": None, "away": None}  # type: ignore[dict-item]
    assert gb.complete(two_way)
    gb.three_way.add("moneyline")          # a draw is offered somewhere in this market
    assert not gb.complete(two_way)
    two_way.sides["draw"] = None  # type: ignore[assignment]
    assert gb.complete(two_way)
    total = Market(("total", "total", "g", 220.5), "total", "total")
    total.sides = {"over": None}  # type: ignore[dict-item]
    assert not gb.complete(total)
