"""Champion selection rules: pure functions over every candidate's per-origin validation errors.

Each rule takes a :class:`ValidationErrors` (one row per validation origin, one column per
candidate, the origin's RMSE; optionally the paired bootstrap replicates of the mean) and returns
the name of one candidate. Test results never reach a rule. Ties are broken by mean validation RMSE,
then by name, so a rule's pick does not depend on the order in which the candidates are listed.

- ``lowest_mean``: the lowest mean validation RMSE.
- ``simpler_in_interval``: the simplest model (registry complexity) whose paired-bootstrap interval
  of the validation RMSE difference to the best one contains 0.
- ``one_se``: the simplest model whose mean is within one standard error of the best mean (the
  standard error of the best model's per-origin RMSEs; Hastie, Tibshirani & Friedman, *The Elements
  of Statistical Learning*, 7.10).
- ``ensemble_if_beats_members``: the ensemble when its cross-fitted validation RMSE beats every
  member's, else ``lowest_mean`` over the single models.
- ``minimax_regret``: the smallest worst-case relative regret, ``max over origins of
  rmse(model, origin) / min over candidates of rmse(origin)`` (Savage's minimax-regret criterion).
- ``rank_mean``: the lowest mean rank across origins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from spendlab.errors import ConfigError
from spendlab.forecast.bootstrap import delta_interval

#: The rule used when an experiment names none: the lowest mean test regret in the selection suite
#: (``benchmarks/selection_suite.py``; table in ``docs/models-and-selection.md``).
DEFAULT_RULE = "rank_mean"


@dataclass(frozen=True)
class ValidationErrors:
    """What every selection rule sees: validation errors only.

    Attributes
    ----------
    errors : pandas.DataFrame
        One row per validation origin, one column per candidate: that origin's RMSE.
    boot : pandas.DataFrame or None
        Paired bootstrap replicates (replicates x candidates) of the mean validation RMSE.
    complexity : Mapping[str, int]
        Rank of each candidate (lower = simpler); unlisted candidates rank as the most complex.
    members : tuple of str
        The ensemble's members (for ``ensemble_if_beats_members``).
    ensemble : str
        The candidate that is the blend of ``members``.
    level : float
        Level of the bootstrap interval of ``simpler_in_interval``.
    """

    errors: pd.DataFrame
    boot: pd.DataFrame | None = None
    complexity: Mapping[str, int] = field(default_factory=dict)
    members: tuple[str, ...] = ()
    ensemble: str = "ensemble"
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.errors.shape[1] == 0 or self.errors.shape[0] == 0:
            raise ConfigError("no candidate has a validation RMSE; cannot choose a champion")
        if not np.isfinite(self.errors.to_numpy(dtype=np.float64)).all():
            raise ConfigError("every candidate needs a finite RMSE at every validation origin")

    @property
    def candidates(self) -> list[str]:
        """Return the candidates sorted by name (rules never depend on column order)."""
        return sorted(str(c) for c in self.errors.columns)

    @property
    def means(self) -> pd.Series:
        """Return the mean validation RMSE per candidate."""
        return self.errors.mean(axis=0)

    def rank_of(self, model: str) -> int:
        """Return the complexity rank of ``model``."""
        worst = max(self.complexity.values(), default=0) + 1
        return int(self.complexity.get(model, worst))


def _argmin(scores: Mapping[str, float], table: ValidationErrors) -> str:
    """Return the candidate with the lowest score; ties by mean validation RMSE, then by name."""
    means = table.means
    return min(scores, key=lambda m: (round(float(scores[m]), 12), float(means[m]), m))


def _simplest(tied: list[str], table: ValidationErrors) -> str:
    means = table.means
    return min(tied, key=lambda m: (table.rank_of(m), float(means[m]), m))


def lowest_mean(table: ValidationErrors) -> str:
    """Pick the candidate with the lowest mean validation RMSE."""
    means = table.means
    return _argmin({m: float(means[m]) for m in table.candidates}, table)


def simpler_in_interval(table: ValidationErrors) -> str:
    """Pick the simplest candidate not significantly worse than the lowest mean.

    Without bootstrap replicates this is :func:`lowest_mean`.
    """
    best = lowest_mean(table)
    if table.boot is None or best not in table.boot.columns:
        return best
    tied = [best]
    for m in table.candidates:
        if m != best and m in table.boot.columns:
            lo, _ = delta_interval(table.boot, m, best, level=table.level)
            if math.isfinite(lo) and lo <= 0.0:
                tied.append(m)
    return _simplest(tied, table)


def one_se(table: ValidationErrors) -> str:
    """Pick the simplest candidate whose mean is within one standard error of the best mean.

    The standard error is the best model's per-origin RMSE spread over ``sqrt(origins)``; with a
    single origin it is the bootstrap standard deviation of its mean (0 without replicates).
    """
    best = lowest_mean(table)
    n = len(table.errors)
    if n > 1:
        se = float(table.errors[best].std(ddof=1) / math.sqrt(n))
    elif table.boot is not None and best in table.boot.columns:
        se = float(table.boot[best].std(ddof=1))
    else:
        se = 0.0
    means = table.means
    tied = [m for m in table.candidates if float(means[m]) <= float(means[best]) + se]
    return _simplest(tied, table)


def ensemble_if_beats_members(table: ValidationErrors) -> str:
    """Pick the ensemble when its validation RMSE beats every member's, else :func:`lowest_mean`."""
    means = table.means
    members = [m for m in table.members if m in means.index]
    if table.ensemble in means.index and members and all(means[table.ensemble] < means[m] for m in members):
        return table.ensemble
    singles = [m for m in table.candidates if m != table.ensemble]
    if not singles:
        return table.ensemble
    return _argmin({m: float(means[m]) for m in singles}, table)


def regret_table(errors: pd.DataFrame) -> pd.DataFrame:
    """Compute each candidate's relative regret per origin: its RMSE over the origin's best RMSE."""
    values = errors.to_numpy(dtype=np.float64)
    best = values.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(values == best, 1.0, values / best)  # a perfect origin: any error is infinite regret
    return pd.DataFrame(ratio, index=errors.index, columns=errors.columns)


def minimax_regret(table: ValidationErrors) -> str:
    """Pick the candidate whose worst per-origin relative regret is smallest."""
    worst = regret_table(table.errors).max(axis=0)
    return _argmin({m: float(worst[m]) for m in table.candidates}, table)


def rank_mean(table: ValidationErrors) -> str:
    """Pick the candidate with the lowest mean rank across origins (ties share the mean rank)."""
    ranks = table.errors.rank(axis=1, method="average").mean(axis=0)
    return _argmin({m: float(ranks[m]) for m in table.candidates}, table)


#: Every rule, by the name an experiment's ``selection.rule`` uses.
RULES: dict[str, Callable[[ValidationErrors], str]] = {
    "lowest_mean": lowest_mean,
    "simpler_in_interval": simpler_in_interval,
    "one_se": one_se,
    "ensemble_if_beats_members": ensemble_if_beats_members,
    "minimax_regret": minimax_regret,
    "rank_mean": rank_mean,
}


def choose(rule: str, table: ValidationErrors) -> str:
    """Apply the rule named ``rule``.

    Parameters
    ----------
    rule : str
        A key of :data:`RULES`.
    table : ValidationErrors
        The candidates' validation errors.

    Returns
    -------
    str
        The chosen candidate.

    Raises
    ------
    ConfigError
        ``rule`` is unknown.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown selection rule {rule!r}; known: {', '.join(RULES)}")
    return RULES[rule](table)


def pick_all(table: ValidationErrors) -> dict[str, str]:
    """Apply every rule; return each pick by rule name."""
    return {name: fn(table) for name, fn in RULES.items()}


def origins_won(errors: pd.DataFrame, model: str) -> int:
    """Count the origins on which ``model`` had the lowest RMSE of all candidates (ties count for each)."""
    best = errors.min(axis=1)
    return int((errors[model] <= best).sum())


def validation_errors(per_origin: Mapping[str, pd.DataFrame], candidates: list[str]) -> pd.DataFrame:
    """Build the origins x candidates table of validation RMSE from each backtest's ``per_origin`` frame.

    Candidates missing an origin, or with a non-finite RMSE at one, are left out.
    """
    cols = {}
    for m in candidates:
        po = per_origin[m]
        val = po[po["split"] == "validation"]
        s = pd.Series(val["rmse"].to_numpy(dtype=np.float64), index=pd.Index(val["cutoff"], name="cutoff"))
        if len(s) and np.isfinite(s.to_numpy()).all():
            cols[m] = s
    frame = pd.DataFrame(cols)
    return frame.dropna(axis=1).sort_index()


def selection_table(picks: Mapping[str, str], board: pd.DataFrame, *, champion: str) -> pd.DataFrame:
    """Tabulate what each rule would have chosen and what that choice scored on test.

    Parameters
    ----------
    picks : Mapping[str, str]
        Rule name -> chosen model (:func:`pick_all`).
    board : pandas.DataFrame
        The leaderboard (``model``, ``validation_rmse``, ``rmse`` = test RMSE).
    champion : str
        The model the experiment's rule chose.

    Returns
    -------
    pandas.DataFrame
        ``rule, model, validation_rmse, test_rmse, test_rmse_vs_champion, test_regret`` (regret = test
        RMSE over the best test RMSE of any model on the board).
    """
    r = board.set_index("model")
    best_test = float(r["rmse"].min())
    rows = []
    for rule, model in picks.items():
        test = float(r.loc[model, "rmse"])
        rows.append({"rule": rule, "model": model, "validation_rmse": float(r.loc[model, "validation_rmse"]),
                     "test_rmse": test, "test_rmse_vs_champion": test - float(r.loc[champion, "rmse"]),
                     "test_regret": test / best_test if best_test > 0 else float("nan")})
    return pd.DataFrame(rows)


#: A choice made on fewer validation origins than this is flagged in the report.
MIN_ORIGINS = 3


def selection_note(rule: str, champion: str, runner_up: str | None, n_origins: int, won: int) -> str:
    """Say in one sentence how the champion was chosen: the rule, the evidence and the runner-up."""
    text = (f"Chosen by {rule} on {n_origins} validation origin{'s' if n_origins != 1 else ''} "
            f"({champion} was best on {won} of them)")
    text += f"; runner-up on validation: {runner_up}." if runner_up else "."
    if n_origins < MIN_ORIGINS:
        text += (f" Warning: fewer than {MIN_ORIGINS} validation origins; the choice rests on little evidence "
                 "(validation: auto uses every origin the data allow).")
    return text
