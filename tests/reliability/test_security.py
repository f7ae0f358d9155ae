"""Issue 10 item 5, catalogue rows 64-65: untrusted input never becomes code, SQL or a path.

* YAML is read with ``safe_load`` at every config entry point: a document that tries to build a
  Python object is a ``ConfigError`` and the canary file its command would create never appears.
* Output names are confined to their base directory before anything is written.
* SQL identifiers from config are allow-listed, then quoted (a column name with a space works).
* Models load only from the URI given; a stray pickle beside it is never unpickled.
* Static guards over ``src/``: no unsafe YAML loader, every Jinja environment autoescapes.
"""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import spendlab
from spendlab.config import load_config
from spendlab.errors import ConfigError, SpendlabError
from spendlab.io.atomic import confined_path
from tests.jobs.conftest import write_experiment

SRC = Path(spendlab.__file__).parent

PAYLOADS = [
    pytest.param('!!python/object/apply:os.system ["touch {canary}"]', id="os.system"),
    pytest.param('!!python/object/apply:subprocess.check_call [["touch", "{canary}"]]', id="subprocess"),
    pytest.param('!!python/object/new:subprocess.Popen [["touch", "{canary}"]]', id="object-new"),
    pytest.param('!!python/name:os.system', id="python-name"),
]


def _pipeline(path: Path) -> object:
    from spendlab.jobs.pipeline import PipelineConfig

    return load_config(PipelineConfig, path)


def _experiment(path: Path) -> object:
    from spendlab.jobs.experiment import load_experiment

    return load_experiment(path)


def _reader(path: Path) -> object:
    from spendlab.cli import reader_config

    return reader_config(path)


def _features(path: Path) -> object:
    from spendlab.jobs.features import load_feature_config

    return load_feature_config(path)


def _tuned(path: Path) -> object:
    from spendlab.jobs.tuned_params import tuned_params

    return tuned_params(path.stem.split("-")[0], path.stem.split("-")[1], tuned_dir=path.parent)


# entry point -> (YAML file name, document template with {value} where the payload goes)
ENTRY_POINTS: dict[str, tuple[Callable[[Path], object], str, str]] = {
    "pipeline": (_pipeline, "pipeline.yaml", "experiment: {value}\n"),
    "experiment": (_experiment, "exp.yaml", "name: {value}\n"),
    "reader": (_reader, "reader.yaml", "reader:\n  timezone: {value}\n"),
    "features": (_features, "features.yaml", "lags: {value}\n"),
    "tuned-params": (_tuned, "exp-ridge.yaml", "params:\n  alpha: {value}\n"),
    "top-level-object": (_pipeline, "whole.yaml", "{value}\n"),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("payload", PAYLOADS)
def test_row64_yaml_that_builds_a_python_object_is_a_config_error_and_runs_nothing(
        tmp_path: Path, entry: str, payload: str) -> None:
    loader, name, template = ENTRY_POINTS[entry]
    canary = tmp_path / "CANARY"
    path = tmp_path / name
    path.write_text(template.format(value=payload.format(canary=canary)))
    with pytest.raises(ConfigError, match=f"{name}.*only plain data"):
        loader(path)
    assert not canary.exists()


@pytest.mark.parametrize("args", [["pipeline", "-c", "{cfg}"], ["validate", "{data}", "--config", "{cfg}"]])
def test_row64_cli_refuses_an_object_building_config_in_one_line_without_running_it(
        tmp_path: Path, args: list[str]) -> None:
    canary = tmp_path / "CANARY"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f'reader: !!python/object/apply:os.system ["touch {canary}"]\n')
    data = tmp_path / "tx.csv"
    data.write_text("type,data,created_at,user_id\n")
    argv = [a.format(cfg=cfg, data=data) for a in args]
    done = subprocess.run([sys.executable, "-m", "spendlab.cli", *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "evil.yaml" in lines[0]
    assert "Traceback" not in done.stderr
    assert not canary.exists()


def test_no_module_uses_an_unsafe_yaml_loader() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml" \
                    and node.attr in {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load",
                                      "full_load_all", "Loader", "UnsafeLoader", "FullLoader"}:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} yaml.{node.attr}")
    assert offenders == []


# --- row 65: output names -----------------------------------------------------------------------


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", [
    pytest.param("../../x", id="dot-dot"),
    pytest.param("sub/../../x", id="dot-dot-inside"),
    pytest.param("/tmp/x", id="absolute"),
    pytest.param("C:x", id="drive-letter"),
    pytest.param("C:\\x", id="drive-letter-backslash"),
    pytest.param("link/x.csv", id="through-a-symlinked-directory"),
    pytest.param("link", id="the-symlink-itself"),
    pytest.param("x\x00.csv", id="nul-byte"),
    pytest.param("", id="empty"),
])
def test_row65_escaping_output_names_are_rejected_before_any_write(tmp_path: Path, name: str) -> None:
    base, outside = tmp_path / "base", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / "link").symlink_to(outside, target_is_directory=True)
    before = _tree(tmp_path)
    with pytest.raises(ConfigError, match="output name"):
        confined_path(base, name)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", ["x.csv", "sub/x.csv", "./x.csv", "sub/../x.csv"])
def test_row65_plain_names_stay_inside_the_base(tmp_path: Path, name: str) -> None:
    target = confined_path(tmp_path, name)
    assert tmp_path.resolve() in target.parents


@pytest.mark.parametrize("bad", ["../../x", "/tmp/x", "a/b", "x\x00y", "..", "C:x"])
def test_row65_experiment_names_that_name_files_are_refused_before_tuning_writes_anything(
        workdir: Path, bad: str) -> None:
    """The experiment name becomes MLflow artifact and tuned-parameter file names."""
    from spendlab.jobs.tune import tune_experiment

    exp = write_experiment(workdir, models=["ridge"], params={}, users=50)
    doc = yaml.safe_load(exp.read_text())
    doc["name"] = bad
    exp.write_text(yaml.safe_dump(doc))
    before = _tree(workdir)
    with pytest.raises(ConfigError, match="name"):
        tune_experiment(exp, model_key="ridge", n_trials=1)
    assert _tree(workdir) == before


# --- SQL identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize("column", ['x" ; DROP TABLE transactions; --', "a'b", "x)", "user_id\n"])
def test_sql_identifiers_from_config_are_allow_listed(tmp_path: Path, column: str) -> None:
    from spendlab.cli import reader_config

    cfg = tmp_path / "reader.yaml"
    cfg.write_text(yaml.safe_dump({"reader": {"generic": {"user_col": column}}}))
    with pytest.raises(ConfigError, match="not allowed"):
        reader_config(cfg)


def test_allowed_identifiers_with_spaces_and_dots_are_quoted_in_sql(tmp_path: Path) -> None:
    from spendlab.cli import reader_config
    from spendlab.io import load_transactions

    data = tmp_path / "tx.parquet"
    pq.write_table(pa.table({"customer id": ["u1", "u2", "u1"],
                             "paid.at": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-02-01"], utc=True),
                             "order-total": [10.0, 2.5, 4.0]}), data)
    cfg = tmp_path / "reader.yaml"
    cfg.write_text(yaml.safe_dump({"reader": {"generic": {"user_col": "customer id", "ts_col": "paid.at",
                                                          "amount_col": "order-total"}}}))
    tx = load_transactions(str(data), "generic", config=reader_config(cfg))
    df = tx.to_pandas()
    assert sorted(zip(df["user_id"], df["amount"], strict=True)) == [("u1", 4.0), ("u1", 10.0), ("u2", 2.5)]


# --- models only from the URI given -------------------------------------------------------------


class _Exploit:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


@pytest.mark.parametrize("uri", ["{dir}", "models:/spendlab-next-month@champion", "runs:/0123abcd/model"])
def test_models_load_only_from_the_uri_given_and_a_stray_pickle_is_never_unpickled(
        workdir: Path, uri: str) -> None:
    from spendlab.tracking.scorer import load_model

    canary = workdir / "CANARY"
    model_dir = workdir / "not-a-model"
    model_dir.mkdir()
    (model_dir / "model.pkl").write_bytes(pickle.dumps(_Exploit(canary)))
    target = uri.format(dir=model_dir)
    with pytest.raises(SpendlabError, match=f"cannot load model {target}"):
        load_model(target)
    assert not canary.exists()


# --- HTML and CSV outputs (the reports' own tests prove the behaviour; this guards new templates)


def test_every_jinja_environment_autoescapes() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in {
                    "Environment", "Template"}:
                kw = {k.arg: k.value for k in node.keywords}
                ok = "autoescape" in kw and not (isinstance(kw["autoescape"], ast.Constant)
                                                and kw["autoescape"].value is False)
                found.append((f"{path.relative_to(SRC)}:{node.lineno}", ok))
    assert found, "no Jinja environment found: the guard would prove nothing"
    assert [where for where, ok in found if not ok] == []
