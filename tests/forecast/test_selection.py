"""Champion selection rules on hand-computed error tables, plus properties every rule keeps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendlab.errors import ConfigError
from spendlab.forecast.selection import (
    RULES,
    ValidationErrors,
    choose,
    origins_won,
    regret_table,
    selection_note,
    selection_table,
    validation_errors,
)

ORIGINS = pd.Index([dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 31)], name="cutoff")
# a: best on average (mean 9.333) but loses badly at the third origin; b: steady (mean 9.5);
# c: worst everywhere (mean 10.333). Per-origin best: 8, 8, 10.5.
ERRORS = pd.DataFrame({"a": [8.0, 8.0, 12.0], "b": [9.0, 9.0, 10.5], "c": [10.0, 10.0, 11.0]}, index=ORIGINS)


def table(errors: pd.DataFrame = ERRORS, **kw: object) -> ValidationErrors:
    return ValidationErrors(errors, **kw)  # type: ignore[arg-type]


def test_lowest_mean_picks_the_lowest_mean_validation_rmse() -> None:
    assert choose("lowest_mean", table()) == "a"


def test_minimax_regret_picks_the_smallest_worst_case_ratio_to_the_origins_best() -> None:
    # worst regret: a 12/10.5 = 1.1429, b 9/8 = 1.125, c 10/8 = 1.25
    reg = regret_table(ERRORS)
    assert reg.max().round(4).to_dict() == {"a": 1.1429, "b": 1.125, "c": 1.25}
    assert choose("minimax_regret", table()) == "b"


def test_rank_mean_picks_the_lowest_mean_rank() -> None:
    # ranks per origin: a 1,1,2 (1.33); b 2,2,1 (1.67); c 3,3,3
    assert choose("rank_mean", table()) == "a"
    assert choose("rank_mean", table(ERRORS[["b", "c"]])) == "b"


def test_one_se_picks_the_simplest_model_within_one_standard_error_of_the_best() -> None:
    # a's per-origin sd is 2.3094, se = 2.3094 / sqrt(3) = 1.3333: threshold 10.667 keeps a, b and c
    assert choose("one_se", table(complexity={"a": 5, "b": 3, "c": 1})) == "c"
    assert choose("one_se", table(complexity={"a": 5, "b": 3, "c": 6})) == "b"
    # a tighter best model: a = 8, 8, 8.6 (se 0.2), threshold 8.4: only a
    tight = ERRORS.assign(a=[8.0, 8.0, 8.6])
    assert choose("one_se", table(tight, complexity={"a": 5, "b": 3, "c": 1})) == "a"


def test_simpler_in_interval_needs_the_bootstrap_interval_to_contain_zero() -> None:
    base = np.linspace(9.0, 9.6, 200)
    boot = pd.DataFrame({"a": base, "b": base + np.linspace(-0.3, 0.6, 200), "c": base + 1.0})
    cx = {"a": 5, "b": 3, "c": 1}
    assert choose("simpler_in_interval", table(boot=boot, complexity=cx)) == "b"  # c is significantly worse
    assert choose("simpler_in_interval", table(complexity=cx)) == "a"  # no replicates: the lowest mean


def test_ensemble_if_beats_members_takes_the_blend_only_when_it_beats_every_member() -> None:
    members = ("a", "b")
    wins = ERRORS.assign(ensemble=[8.5, 8.5, 10.6])  # mean 9.2 < 9.333 and 9.5
    assert choose("ensemble_if_beats_members", table(wins, members=members)) == "ensemble"
    loses = ERRORS.assign(ensemble=[8.6, 8.6, 11.0])  # mean 9.4: a is better
    assert choose("ensemble_if_beats_members", table(loses, members=members)) == "a"


def test_a_perfect_origin_makes_every_other_error_infinite_regret() -> None:
    e = pd.DataFrame({"x": [0.0, 5.0], "y": [1.0, 4.0]})
    reg = regret_table(e)
    assert reg.loc[0, "x"] == 1.0 and np.isinf(reg.loc[0, "y"]) and reg.loc[1, "x"] == pytest.approx(1.25)
    assert choose("minimax_regret", table(e)) == "x"


def test_unknown_rule_and_empty_or_nan_tables_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown selection rule 'best'"):
        choose("best", table())
    with pytest.raises(ConfigError):
        ValidationErrors(pd.DataFrame(index=ORIGINS))
    with pytest.raises(ConfigError):
        ValidationErrors(ERRORS.assign(a=[8.0, np.nan, 9.0]))


def test_origins_won_counts_the_origins_where_a_model_is_best() -> None:
    assert origins_won(ERRORS, "a") == 2 and origins_won(ERRORS, "b") == 1 and origins_won(ERRORS, "c") == 0


def test_validation_errors_reads_the_validation_rows_of_each_backtest() -> None:
    def po(rmse: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"split": ["validation"] * 3 + ["test"], "cutoff": [*ORIGINS, dt.date(2024, 5, 31)],
                             "rmse": [*rmse, 99.0]})
    got = validation_errors({"a": po([8, 8, 12]), "b": po([9, 9, 10.5]), "bad": po([1, np.nan, 1])}, ["a", "b", "bad"])
    pd.testing.assert_frame_equal(got, ERRORS[["a", "b"]], check_index_type=False, check_names=False)


def test_selection_table_gives_each_rules_test_rmse_and_regret() -> None:
    board = pd.DataFrame({"model": ["a", "b", "c", "zero"], "rmse": [11.0, 10.0, 10.5, 12.0],
                          "validation_rmse": [9.333, 9.5, 10.333, np.nan]})
    t = selection_table({"lowest_mean": "a", "minimax_regret": "b"}, board, champion="b").set_index("rule")
    assert t.loc["lowest_mean", "test_rmse"] == 11.0
    assert t.loc["lowest_mean", "test_regret"] == pytest.approx(1.1)
    assert t.loc["lowest_mean", "test_rmse_vs_champion"] == pytest.approx(1.0)
    assert t.loc["minimax_regret", "test_regret"] == 1.0


def test_the_note_flags_a_choice_made_on_fewer_than_three_origins() -> None:
    assert "Warning" in selection_note("lowest_mean", "a", "b", 2, 1)
    note = selection_note("minimax_regret", "a", "b", 4, 3)
    assert "4 validation origins" in note and "best on 3" in note and "runner-up on validation: b" in note
    assert "Warning" not in note


error_tables = st.integers(min_value=1, max_value=6).flatmap(
    lambda n_origins: st.integers(min_value=1, max_value=6).flatmap(
        lambda n_models: st.lists(st.lists(st.floats(0.5, 50.0, allow_nan=False), min_size=n_models,
                                           max_size=n_models), min_size=n_origins, max_size=n_origins)))


def _frame(rows: list[list[float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[f"m{j}" for j in range(len(rows[0]))])


@settings(max_examples=60, deadline=None)
@given(error_tables, st.randoms(use_true_random=False))
def test_every_rule_picks_a_candidate_whatever_the_column_order(rows: list[list[float]], rnd: object) -> None:
    e = _frame(rows)
    cols = list(e.columns)
    rnd.shuffle(cols)  # type: ignore[attr-defined]
    cx = {c: i % 3 for i, c in enumerate(sorted(e.columns))}
    boot = pd.DataFrame(np.tile(e.mean().to_numpy(), (20, 1)) + np.linspace(-1, 1, 20)[:, None], columns=e.columns)
    for rule in RULES:
        pick = choose(rule, table(e, boot=boot, complexity=cx, members=("m0", "m1"), ensemble="m2"))
        assert pick in e.columns
        assert choose(rule, table(e[cols], boot=boot[cols], complexity=cx, members=("m0", "m1"),
                                  ensemble="m2")) == pick


@settings(max_examples=60, deadline=None)
@given(error_tables, st.integers(-3, 3))
def test_lowest_mean_is_the_argmin_and_the_picks_do_not_depend_on_units(rows: list[list[float]], j: int) -> None:
    e = _frame(rows)
    pick = choose("lowest_mean", table(e))
    assert e.mean()[pick] == e.mean().min()
    worst = regret_table(e).max()
    assert worst[choose("minimax_regret", table(e))] == pytest.approx(worst.min())
    k = 2.0 ** j  # exact in floating point: the same order, the same ratios
    for rule in ("lowest_mean", "minimax_regret", "rank_mean", "one_se"):
        assert choose(rule, table(e * k)) == choose(rule, table(e))
    # a model that is best at every origin by a margin is the pick of every rule without a complexity preference
    dominant = e.assign(star=e.min(axis=1) * 0.5)
    for rule in ("lowest_mean", "minimax_regret", "rank_mean", "ensemble_if_beats_members"):
        assert choose(rule, table(dominant)) == "star"
