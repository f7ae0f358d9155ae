"""``datasets synth --shift MONTH:rate=R,basket=B``: a world whose behaviour changes at a known month."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spendlab.cli import main
from spendlab.datasets.shift import Shift, parse_shift
from spendlab.datasets.synth import SynthWorld
from spendlab.errors import SpendlabError
from spendlab.jobs.datasets import synth_transactions


@pytest.mark.parametrize(("text", "want"), [
    ("18:rate=0.5", Shift(month=17, rate=0.5)),
    ("1:basket=1.2", Shift(month=0, basket=1.2)),
    ("2024-06:rate=0.5,basket=1.2", Shift(month=17, rate=0.5, basket=1.2)),  # from 2023-01: the 18th month
])
def test_parse(text: str, want: Shift) -> None:
    assert parse_shift(text, start="2023-01-01") == want


@pytest.mark.parametrize(("text", "message"), [
    ("18", "expected MONTH:rate"), ("x:rate=0.5", "neither a number"), ("0:rate=0.5", "before the first month"),
    ("2022-12:rate=0.5", "before the first month"), ("3:speed=2", "not one of"), ("3:rate=abc", "must be a number"),
    ("3:rate=-1", "positive"), ("3:rate=nan", "positive"),
])
def test_bad_shifts_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(SpendlabError, match=message):
        parse_shift(text, start="2023-01-01")


def test_the_oracle_changes_by_exactly_the_factors_from_the_month_on() -> None:
    plain = SynthWorld(users=400, months=24, seed=2)
    shifted = SynthWorld(users=400, months=24, seed=2, shift=Shift(month=17, rate=0.5))
    both = SynthWorld(users=400, months=24, seed=2, shift=Shift(month=17, rate=0.5, basket=1.2))
    lat = plain.latent(0)
    a, b, c = (w.expected_monthly_spend(lat) for w in (plain, shifted, both))
    np.testing.assert_array_equal(a[:, :17], b[:, :17])
    active = a[:, 17:] > 0
    # the acquisition month's forced purchase is not halved: compare users acquired before the shift
    early = lat.acquisition < 17
    np.testing.assert_allclose(b[early, 17:], 0.5 * a[early, 17:], rtol=1e-12)
    ratio = c[early, 17:][active[early]] / b[early, 17:][active[early]]
    assert np.all((ratio > 1.15) & (ratio <= 1.2 + 1e-12))  # baskets x1.2 (the 50-cent floor pulls slightly below)


def test_realized_spend_halves_after_the_shift(tmp_path) -> None:
    plain, shifted = tmp_path / "a.parquet", tmp_path / "b.parquet"
    synth_transactions(plain, users=3000, months=24, seed=4)
    synth_transactions(shifted, users=3000, months=24, seed=4, shift="18:rate=0.5")

    def monthly(path) -> pd.Series:
        df = pd.read_parquet(path)
        df = df[df["amount"] > 0]
        return df.groupby(df["ts"].dt.strftime("%Y-%m"))["amount"].sum()

    a, b = monthly(plain), monthly(shifted)
    before = b.loc[:"2024-05"] / a.loc[:"2024-05"]
    after = b.loc["2024-06":] / a.loc["2024-06":]
    assert before.between(0.9, 1.1).all()  # the same world before the shift (other draws, same law)
    assert after.between(0.35, 0.65).all()


def test_cli_shift_option_is_validated_before_anything_is_written(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["datasets", "synth", "--users", "50", "--months", "6", "--out", str(tmp_path / "x.parquet"),
              "--shift", "3:rate=zero"])
    assert exc.value.code == 2 and "rate must be a number" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
