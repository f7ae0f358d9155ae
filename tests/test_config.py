"""YAML at the edges: safe loading, strict validation, stable hashes, allow-listed identifiers."""

from __future__ import annotations

import datetime as dt

import pytest

from spendlab.cli import reader_config
from spendlab.config import ReaderConfig, config_hash, load_config, load_yaml, parse_config, safe_identifier
from spendlab.errors import ConfigError


def test_unknown_keys_are_errors_naming_the_file_and_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reader:\n  timezon: UTC\n")
    with pytest.raises(ConfigError) as exc:
        reader_config(cfg)
    assert str(cfg) in str(exc.value) and "timezon" in str(exc.value)


def test_python_object_tags_are_refused_and_nothing_runs(tmp_path):
    canary = tmp_path / "canary"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f'reader: !!python/object/apply:os.system ["touch {canary}"]\n')
    with pytest.raises(ConfigError, match="not a valid YAML config"):
        load_yaml(cfg)
    assert not canary.exists()


def test_a_missing_or_non_mapping_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_yaml(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}


def test_reader_section_is_validated_and_defaults_apply(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("reader:\n  timezone: America/New_York\n  window_end: 2021-12-31\n  thousands: ','\n")
    rc = reader_config(cfg)
    assert rc.timezone == "America/New_York" and rc.window_end == dt.date(2021, 12, 31) and rc.thousands == ","
    assert rc.max_abs_amount == 1e7 and rc.refunds == "separate"
    assert reader_config(None) == ReaderConfig()


def test_unknown_time_zone_is_rejected():
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        parse_config(ReaderConfig, {"timezone": "Mars/Olympus"}, "c.yaml")


def test_config_hash_is_stable_and_changes_with_any_value():
    assert config_hash(ReaderConfig()) == config_hash(ReaderConfig())
    assert config_hash(ReaderConfig()) != config_hash(ReaderConfig(dedupe=True))
    assert len(config_hash(ReaderConfig())) == 16


def test_load_config_without_a_path_gives_defaults():
    assert load_config(ReaderConfig, None) == ReaderConfig()


@pytest.mark.parametrize("name", ["amount", "user id", "col_1", "a.b", "x-y"])
def test_safe_identifier_allows_plain_column_names(name):
    assert safe_identifier(name) == name


@pytest.mark.parametrize("name", ['amount"; DROP TABLE t; --', "a'b", "", "1abc", "a;b", "x" * 200, "é"])
def test_safe_identifier_refuses_anything_that_could_break_out_of_quotes(name):
    with pytest.raises(ValueError, match="is not allowed"):
        safe_identifier(name)
