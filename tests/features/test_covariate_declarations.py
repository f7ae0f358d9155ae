"""What the covariates read is checked against the configs when a job resolves them, before any data is read.

The oracle for "declared" is the feature build itself: every configuration the check passes builds on a
table carrying exactly the declared attributes, and every one it refuses names each problem.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendlab.config import ReaderConfig, UserTableSpec
from spendlab.errors import ConfigError
from spendlab.features import FeatureConfig, build_features
from spendlab.features.config import CovariateConfig, check_covariates
from spendlab.io import load_transactions
from spendlab.io.load import connect
from spendlab.io.users import link_counts, load_users

LINES = """order,cust,ts,amount,dept,disc
O1,u1,2024-01-10 10:00:00,10.00,A,0
O2,u1,2024-02-05 10:00:00,6.00,A,-1.00
O3,u2,2024-02-06 10:00:00,4.00,B,0
"""
PRODUCTS = "sku,aisle\nA,dry\nB,fresh\n"
USERS = "hh,age\nu1,young\n"
#: Every line attribute a reader can declare here, with its type (``aisle`` from the lookup table).
DECLARABLE = {"dept": "category", "disc": "amount", "aisle": "category"}
USER_COLUMNS = ("age",)


def reader(declared: set[str], tmp_path) -> ReaderConfig:
    attributes = {a: {"column": a, "type": DECLARABLE[a]} for a in ("dept", "disc") if a in declared}
    lookups = ({"product": {"input": str(tmp_path / "products.csv"), "key": "sku", "column": "dept",
                            "columns": {"aisle": "aisle"}}} if "aisle" in declared else {})
    return ReaderConfig(generic={"user_col": "cust", "order_col": "order", "attributes": attributes,
                                 "lookups": lookups})


def users_spec(tmp_path) -> UserTableSpec:
    return UserTableSpec(input=str(tmp_path / "users.csv"), key="hh", columns={"age": "category"})


def covariates(category: tuple[str, ...], amount: tuple[str, ...], user: tuple[str, ...]) -> CovariateConfig:
    return CovariateConfig(window=2, category_share={a: 1 for a in category[:1]}, distinct=category[1:],
                           amount_share=amount[:1], use_rate=amount[1:], user_attributes=user)


def expected_problems(cov: CovariateConfig, declared: set[str], with_users: bool) -> list[str]:
    """The problems, worked out from the declarations alone (one word each)."""
    wanted = {**{a: "category" for a in (*cov.category_share, *cov.distinct)},
              **{a: "amount" for a in (*cov.amount_share, *cov.use_rate)}}
    out = []
    if any(a not in declared for a in wanted):
        out.append("undeclared")
    if any(a in declared and DECLARABLE[a] != t for a, t in wanted.items()):
        out.append("type")
    if cov.user_attributes and not with_users:
        out.append("no table")
    elif any(u not in USER_COLUMNS for u in cov.user_attributes):
        out.append("user column")
    return out


NAMES = st.lists(st.sampled_from(sorted(DECLARABLE)), max_size=2, unique=True).map(tuple)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(declared=st.sets(st.sampled_from(sorted(DECLARABLE))), category=NAMES, amount=NAMES,
       user=st.lists(st.sampled_from(["age", "income"]), max_size=2, unique=True).map(tuple),
       with_users=st.booleans())
def test_the_check_refuses_exactly_what_is_undeclared_or_of_the_wrong_type(tmp_path, declared, category, amount,
                                                                          user, with_users):
    (tmp_path / "products.csv").write_text(PRODUCTS)
    cov = covariates(category, amount, user)
    want = expected_problems(cov, declared, with_users)
    call = lambda: check_covariates(FeatureConfig(covariates=cov), reader(declared, tmp_path),  # noqa: E731
                                    fmt="generic", users=users_spec(tmp_path) if with_users else None,
                                    where="exp.yaml")
    if not want:
        call()
        return
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert message.startswith("exp.yaml: ")
    assert ("does not declare" in message) == ("undeclared" in want)
    assert ("wrong type" in message) == ("type" in want)
    assert ("need a user table" in message) == ("no table" in want)
    assert ("not columns of the user table" in message) == ("user column" in want)


@pytest.mark.parametrize("declared", [set(c) for n in range(len(DECLARABLE) + 1)
                                      for c in itertools.combinations(sorted(DECLARABLE), n)])
def test_what_the_check_passes_the_feature_build_computes(tmp_path, declared):
    """The independent oracle: every covariate set of declared attributes the check passes, the build computes."""
    (tmp_path / "l.csv").write_text(LINES)
    (tmp_path / "products.csv").write_text(PRODUCTS)
    (tmp_path / "users.csv").write_text(USERS)
    cfg = reader(declared, tmp_path)
    tx = load_transactions(str(tmp_path / "l.csv"), "generic", config=cfg)
    tx.users = load_users(users_spec(tmp_path))
    con = connect()
    tx.register(con)
    link_counts(tx.users, con)
    cats = tuple(a for a in sorted(declared) if DECLARABLE[a] == "category")
    amounts = tuple(a for a in sorted(declared) if DECLARABLE[a] == "amount")
    for category, amount in itertools.product([(), cats], [(), amounts]):
        cov = covariates(category, amount, ("age",))
        check_covariates(FeatureConfig(covariates=cov), cfg, fmt="generic", users=users_spec(tmp_path), where="x")
        frame = build_features(con, freq="month", as_of=dt.date(2024, 2, 29), config=FeatureConfig(covariates=cov))
        assert len(frame) == 2
        assert any(c.startswith("user_age__") for c in frame.columns)


def test_other_formats_carry_no_line_attributes():
    cov = CovariateConfig(category_share={"dept": 2})
    with pytest.raises(ConfigError, match=r"x: covariates read line attribute\(s\) \['dept'\].*declared: none"):
        check_covariates(FeatureConfig(covariates=cov), ReaderConfig(), fmt="cdnow", users=None, where="x")
    check_covariates(FeatureConfig(), ReaderConfig(), fmt="cdnow", users=None, where="x")  # no covariates: nothing


def test_an_experiment_with_undeclared_covariates_stops_before_reading_its_data(tmp_path):
    from spendlab.jobs.plan import load_experiment, plan_experiment, plan_tune

    (tmp_path / "features.yaml").write_text("covariates:\n  window: 2\n  category_share: {dept: 2}\n"
                                            "  user_attributes: [age_band]\n")
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""name: x
dataset:
  input: {tmp_path / 'absent.csv'}
  users: {{input: {tmp_path / 'absent_users.csv'}, key: hh, columns: {{age: category}}}}
reader:
  generic: {{user_col: cust, attributes: {{dept: {{column: dept, type: amount}}}}}}
features: {tmp_path / 'features.yaml'}
validation: {{start: 2024-01-31, end: 2024-01-31}}
test: {{start: 2024-02-29, end: 2024-02-29}}
models: [zero]
""")
    cfg = load_experiment(exp)
    with pytest.raises(ConfigError, match=r"exp\.yaml: .*wrong type: dept \(amount; category wanted\).*"
                                          r"\['age_band'\] are not columns of the user table"):
        plan_experiment(cfg, experiment_path=exp)
    with pytest.raises(ConfigError, match="wrong type"):
        plan_tune(cfg, model_key="lightgbm", n_trials=1)


@pytest.mark.slow
def test_the_features_command_names_the_config_and_every_problem_in_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "l.csv").write_text(LINES)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("reader:\n  generic: {user_col: cust, order_col: order, attributes: {disc: {column: disc, type: amount}}}\n"
                   "features:\n  covariates: {window: 2, distinct: [disc, store], user_attributes: [age]}\n")
    out = tmp_path / "f.parquet"
    run = subprocess.run([sys.executable, "-m", "spendlab.cli", "features", str(tmp_path / "l.csv"), "--config",
                          str(cfg), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert lines[0].startswith(f"error: {cfg}: ")
    for part in ("['store'] that reader.generic does not declare", "disc (amount; category wanted)",
                 "need a user table"):
        assert part in lines[0]
    assert not out.exists()
