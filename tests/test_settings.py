"""Issue 15 item 6: every setting is validated at the edge, with one clear line and exit 2."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from spendlab.cli import main
from spendlab.config import ReaderConfig, load_yaml, parse_config
from spendlab.errors import ConfigError
from spendlab.io.load import connect
from spendlab.settings import check_as_of, check_country, check_tolerance, compile_pattern, parse_memory_limit
from tests.conftest import millions_csv


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_abs_amount": float("nan")}, "max_abs_amount: Input should be a finite number"),
        ({"max_abs_amount": float("inf")}, "max_abs_amount: Input should be a finite number"),
        ({"max_abs_amount": -5}, "max_abs_amount: Input should be greater than 0"),
        ({"max_abs_amount": 0}, "max_abs_amount: Input should be greater than 0"),
        ({"max_line_bytes": -5}, "max_line_bytes: Input should be greater than 0"),
        ({"max_line_bytes": 0}, "max_line_bytes: Input should be greater than 0"),
        ({"window_start": "2022-01-01", "window_end": "2021-01-01"}, "must be before window_end"),
        ({"window_start": "2022-01-01", "window_end": "2022-01-01"}, "must be before window_end"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"max_abs_amount": "lots"}, "max_abs_amount"),
    ],
    ids=["nan", "inf", "negative", "zero", "line-negative", "line-zero", "window-reversed", "window-empty",
         "zone", "word"],
)
def test_reader_numbers_are_finite_and_in_range(section, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(ReaderConfig, section, "cfg.yaml")
    assert message in str(exc.value) and str(exc.value).startswith("cfg.yaml: invalid config")


def test_unknown_keys_list_the_allowed_keys_at_their_level():
    with pytest.raises(ConfigError) as exc:
        parse_config(ReaderConfig, {"generic": {"usr_col": "x"}}, "cfg.yaml")
    assert "generic.usr_col" in str(exc.value)
    assert "allowed keys: amount_col, attributes, exclude, include, lookups, order_col, quantity_col, spend_is, ts_col, ts_format, " \
           "ts_origin, ts_unit, unit_price_col, user_col" in str(exc.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4GB", "4GB"), ("512 mib", "512MiB"), ("1.5GB", "1.5GB"), ("none", None), (None, None), ("64MiB", "64MiB")],
)
def test_memory_limits_are_parsed(value, expected):
    assert parse_memory_limit(value) == expected


@pytest.mark.parametrize("value", ["lots", "1MB", "-1GB", "inf", "4", "4 G B", "1e9B", "0GB", "４GB"])
def test_bad_memory_limits_are_config_errors(value):
    with pytest.raises(ConfigError, match="--memory-limit"):
        parse_memory_limit(value)
    with pytest.raises(ConfigError):
        connect(memory_limit=value)


def test_country_codes_are_checked_against_holidays():
    assert check_country("US") == "US"
    with pytest.raises(ConfigError, match="--country 'XX' is not a country"):
        check_country("XX")
    with pytest.raises(ConfigError, match="did you mean"):
        check_country("us")


def test_patterns_are_compiled_and_tolerances_finite():
    assert compile_pattern(r"delta\d+\.csv").match("delta1.csv")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        compile_pattern("(")
    assert check_tolerance(0.0) == 0.0
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="--tolerance must be a finite number >= 0"):
            check_tolerance(bad)


def test_as_of_must_lie_within_the_data_and_warns_past_one_period():
    first, last = dt.date(2021, 11, 1), dt.date(2021, 12, 31)
    assert check_as_of(dt.date(2021, 12, 31), first, last) == []
    assert check_as_of(dt.date(2022, 1, 31), first, last) == []
    (warning,) = check_as_of(dt.date(2022, 6, 1), first, last)
    assert "more than one month after the last transaction (2021-12-31)" in warning
    assert check_as_of(dt.date(2022, 1, 10), first, last, freq="week")
    for bad in (dt.date(9999, 12, 31), dt.date(2030, 1, 1), dt.date(2021, 10, 31)):
        with pytest.raises(ConfigError, match="must lie within the data"):
            check_as_of(bad, first, last)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("params:\n" + "\n".join("  " + line for line in levels) + "\n")
    with pytest.raises(ConfigError) as exc:
        load_yaml(bomb)
    assert "aliases are not allowed" in str(exc.value) and "line 3" in str(exc.value)
    huge = tmp_path / "huge.yaml"
    huge.write_text("a: " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="at most 1024 KiB"):
        load_yaml(huge)


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(millions_csv([("-10.00", "2021-11-03 9:00:00", "1"), ("-5.00", "2021-12-04 9:00:00", "2")]))
    return path


def _run(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["spendlab", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    return exc.value.code, captured.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["describe", "{export}", "-f", "millions", "--out", "{out}", "--country", "XX"], "--country 'XX'"),
        (["describe", "{export}", "-f", "millions", "--out", "{out}", "--memory-limit", "lots"], "--memory-limit 'lots'"),
        (["describe", "{export}", "-f", "millions", "--out", "{out}", "--memory-limit", "1MB"], "below the minimum"),
        (["features", "{export}", "-f", "millions", "--out", "{out}/f.parquet", "--as-of", "9999-12-31"],
         "must lie within the data"),
        (["features", "{export}", "-f", "millions", "--out", "{out}/f.parquet", "--memory-limit", "-1GB"],
         "--memory-limit '-1GB'"),
        (["validate", "{export}", "-f", "millions", "-c", "{cfg}"], "max_abs_amount: Input should be a finite number"),
        (["reconcile", "--deltas", "{out}", "--platform", "{export}", "--source", "{export}", "--out", "{out}",
          "--pattern", "("], "--pattern '(' is not a valid regular expression"),
        (["reconcile", "--deltas", "{out}", "--platform", "{export}", "--source", "{export}", "--out", "{out}",
          "--tolerance", "-1"], "--tolerance must be a finite number >= 0"),
        (["reconcile", "--deltas", "{out}", "--platform", "{export}", "--source", "{export}", "--out", "{out}",
          "--tolerance", "inf"], "--tolerance must be a finite number >= 0"),
    ],
    ids=["country", "memory-word", "memory-tiny", "as-of-far-future", "memory-negative", "nan-config", "pattern",
         "tolerance-negative", "tolerance-inf"],
)
def test_bad_settings_exit_2_with_one_line_and_no_traceback(monkeypatch, capsys, tmp_path, export, args, needle):
    cfg = tmp_path / "nan.yaml"
    cfg.write_text("reader:\n  max_abs_amount: .nan\n")
    out = tmp_path / "out"
    code, stderr = _run(monkeypatch, capsys, *[a.format(export=export, out=out, cfg=cfg) for a in args])
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert needle in lines[0] and "Traceback" not in stderr
    assert not (out / "report.html").exists() and not (out / "f.parquet").exists()


def test_an_as_of_past_one_period_after_the_data_warns_and_still_runs(monkeypatch, capsys, tmp_path, export):
    out = tmp_path / "f.parquet"
    monkeypatch.setattr(sys, "argv", ["spendlab", "features", str(export), "-f", "millions", "--out", str(out),
                                      "--as-of", "2022-03-15"])
    main()
    err = capsys.readouterr().err
    assert "warning: --as-of 2022-03-15 is more than one month after the last transaction (2021-12-04)" in err
    assert out.exists()
