"""``execute_tune`` and ``execute_score`` read nothing but their plan's data (and the run store): every Python-level read is recorded.

The experiment's own ``execute`` is covered in ``test_plan.py``; here every way Python code opens a
file for reading is recorded (``builtins.open``, ``io.open`` and so ``pathlib.Path.open``,
``read_text`` and ``read_bytes``), the YAML readers are disabled, and the config files are deleted
after planning.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from spendlab.jobs.experiment import run_experiment
from spendlab.jobs.plan import load_experiment, plan_score, plan_tune
from spendlab.jobs.promote import promote_experiment
from spendlab.jobs.score import execute_score
from spendlab.jobs.tune import execute_tune
from tests.jobs.conftest import write_experiment

pytestmark = pytest.mark.slow


def _is_read(mode: str) -> bool:
    return not any(c in mode for c in "wax+")


def _recording(real: Callable[..., object], opened: list[Path]) -> Callable[..., object]:
    def open_(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if isinstance(file, (str, Path)) and _is_read(mode):
            opened.append(Path(file).resolve())
        return real(file, mode, *args, **kwargs)
    return open_


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"execute parsed YAML: {args}")


@contextlib.contextmanager
def watching_reads(monkeypatch: pytest.MonkeyPatch, *, refuse_yaml: bool = True) -> Iterator[list[Path]]:
    """Record every file opened for reading through Python inside the block, and refuse YAML."""
    opened: list[Path] = []
    with monkeypatch.context() as m:
        m.setattr(builtins, "open", _recording(builtins.open, opened))
        m.setattr(io, "open", _recording(io.open, opened))  # pathlib's open, read_text, read_bytes
        if refuse_yaml:
            m.setattr(yaml, "safe_load", _refuse)
            m.setattr(yaml, "load", _refuse)
        yield opened


def test_the_watch_sees_every_kind_of_read_and_refuses_yaml(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "some.yaml"
    with watching_reads(monkeypatch) as opened:
        config.write_bytes(b"a: 1\n")  # writes are not reads
        assert opened == []
        config.read_text()
        config.read_bytes()
        with open(config, encoding="utf-8"):
            pass
        with pytest.raises(AssertionError, match="parsed YAML"):
            yaml.safe_load("a: 1")
    assert opened == [config.resolve()] * 3
    assert yaml.safe_load("a: 1") == {"a": 1}  # restored after the block


def test_execute_tune_reads_only_the_plans_data(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = write_experiment(workdir, models=["zero", "ridge"], users=80)
    (workdir / "features.yaml").write_text("weekly_activity_windows: [4]\n")
    exp.write_text(exp.read_text() + f"features: {workdir / 'features.yaml'}\n")
    plan = plan_tune(load_experiment(exp), model_key="ridge", n_trials=2)
    assert plan.features.weekly_activity_windows == (4,)
    exp.unlink()
    (workdir / "features.yaml").unlink()
    shutil.rmtree(workdir / "configs", ignore_errors=True)

    with watching_reads(monkeypatch) as opened:
        result = execute_tune(plan)

    assert result.n_complete == 2
    assert result.params_path.is_file()
    allowed = [(workdir / d).resolve() for d in ("data", "mlruns", "configs/tuned")]
    under_project = sorted({p for p in opened if p.is_relative_to(workdir.resolve())})
    assert under_project, "the plan's data is read through Python (a Parquet file's magic bytes at least)"
    assert all(any(p.is_relative_to(a) for a in allowed) for p in under_project), under_project


def test_execute_score_reads_only_its_input_and_the_model_in_the_store(workdir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    exp = write_experiment(workdir, models=["last_period"], users=80)
    run_experiment(exp, out_dir=workdir / "exp_out")
    promote_experiment(str(exp))
    plan = plan_score(str(workdir / "data" / "tx.parquet"), out=workdir / "out" / "scores.parquet",
                      model_uri="models:/spendlab-next-month@champion")
    exp.unlink()
    shutil.rmtree(workdir / "exp_out")

    # MLflow parses the model's own MLmodel (YAML, in the store): only where files are read is checked.
    with watching_reads(monkeypatch, refuse_yaml=False) as opened:
        result = execute_score(plan, progress=False)

    assert result.rows_out == result.users_in > 0 and result.out.is_file()
    allowed = [(workdir / d).resolve() for d in ("data", "mlruns", "out")]
    under_project = sorted({p for p in opened if p.is_relative_to(workdir.resolve())})
    assert any(p.is_relative_to(allowed[1]) for p in under_project), "the model is read from the store"
    assert all(any(p.is_relative_to(a) for a in allowed) for p in under_project), under_project
