"""The experiment protocol (``experiments/*.yaml``): dataset, frequency, validation and test origins.

An experiment names a dataset, a frequency, the **validation** origins (choose the champion and
the ensemble weights, fit the interval quantiles, tune) and the **test** origins (reported), the
models to compare and their hyperparameters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator

from spendlab.calendar import Freq, period_end, shift_period
from spendlab.config import ReaderConfig, StrictModel, UserTableSpec
from spendlab.errors import ConfigError
from spendlab.forecast.selection import DEFAULT_RULE, RULES
from spendlab.io.load import READERS
from spendlab.models.registry import COMBINERS, MODELS


class DatasetSpec(StrictModel):
    """Where the transactions come from (same arguments as ``spendlab validate``)."""

    input: str
    format: str = "generic"  # a key of spendlab.io.load.READERS
    name: str | None = None  # the dataset's name in MLflow; default: the input
    users: UserTableSpec | None = None  # a user attribute table, joined as of each cutoff

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v not in READERS:
            raise ValueError(f"unknown format {v!r}; choose one of {', '.join(READERS)}")
        return v


class Origins(StrictModel):
    """Cutoffs (period ends): every period end from ``start`` to ``end``, or an explicit list."""

    start: dt.date | None = None
    end: dt.date | None = None
    dates: tuple[dt.date, ...] = ()

    @model_validator(mode="after")
    def _one_form(self) -> Origins:
        if bool(self.dates) == (self.start is not None or self.end is not None):
            raise ValueError("give either dates: [...] or start: and end:")
        if not self.dates and (self.start is None or self.end is None):
            raise ValueError("start: and end: go together")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def cutoffs(self, freq: Freq) -> list[dt.date]:
        """Return the cutoffs, each checked to be the last day of its period."""
        if self.dates:
            out = sorted(set(self.dates))
            bad = [d for d in out if d != period_end(d, freq)]
            if bad:
                raise ConfigError(f"origins must be {freq} ends (cutoff = last day of a period): {bad}")
            return out
        assert self.start is not None and self.end is not None
        out, cur = [], period_end(self.start, freq)
        if cur != self.start:
            raise ConfigError(f"origins start {self.start} is not the last day of a {freq}")
        while cur <= self.end:
            out.append(cur)
            cur = period_end(shift_period(cur, freq, 1), freq)
        return out


class SegmentSpec(StrictModel):
    """Segments for the per-segment RMSE and the intervals (see ``backtest.segment_users``)."""

    active_window: int = 3  # periods (lag1..lagN) in which a purchase makes a user "active"


class SelectionSpec(StrictModel):
    """How the champion is chosen from the validation origins (``spendlab.forecast.selection``)."""

    rule: str = DEFAULT_RULE
    level: float = 0.95  # of the paired-bootstrap interval (simpler_in_interval)

    @field_validator("rule")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in RULES:
            raise ValueError(f"unknown selection rule {v!r}; known: {', '.join(RULES)}")
        return v


class ExperimentConfig(StrictModel):
    """One ``experiments/<name>.yaml``."""

    name: str
    description: str = ""
    dataset: DatasetSpec
    reader: ReaderConfig = ReaderConfig()
    freq: Freq = "month"
    horizon: int = 1  # the target is the spend of the ``horizon`` periods after the cutoff's period
    # "auto": every period end from the first one with a full training window (``train_origins``)
    # to the last one whose target is known before the first test cutoff (resolve_validation).
    validation: Origins | Literal["auto"]
    test: Origins
    # Earlier origins stacked into each training set: the most recent N; "all" = every earlier
    # origin whose target is known, back to the end of the data's first period; or a date = every
    # earlier origin from that cutoff on (the first month end by which the population exists).
    train_origins: int | Literal["all"] | dt.date = 6
    # Share of the zero-target training rows the pooled models fit on (seeded by ``seed``, stratified by
    # origin and recency, each kept row weighted to stand for those dropped; forecast.sampling). 1 = all.
    train_zero_fraction: float = 1.0
    features: Path | None = None  # feature-set YAML; None = spendlab's default feature set
    models: tuple[str, ...] = ()  # () = every registry key
    params: dict[str, dict[str, Any]] = {}
    ensemble_members: tuple[str, ...] = ("lightgbm", "lightgbm_clv", "sm_tweedie_glm", "bgnbd_seasonal")
    # Members whose mean validation |bias| exceeds this are left out of the blend (validation only).
    ensemble_max_validation_bias: float = 0.10
    segments: SegmentSpec = SegmentSpec()
    selection: SelectionSpec = SelectionSpec()
    interval_level: float = 0.8
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("name must be letters, digits, _ . - (it names MLflow experiments and files)")
        return v

    @field_validator("horizon", "train_origins")
    @classmethod
    def _positive(cls, v: int | str | dt.date) -> int | str | dt.date:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be at least 1")
        return v

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:

        unknown = [m for m in (*self.models, *self.params, *self.ensemble_members) if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
        combined = sorted(set(self.ensemble_members) & COMBINERS)
        if combined:
            raise ValueError(f"ensemble_members cannot include {', '.join(combined)} (members are single models)")
        if not 0.0 < self.train_zero_fraction <= 1.0:
            raise ValueError("train_zero_fraction must be in (0, 1]")
        if not 0.0 < self.interval_level < 1.0:
            raise ValueError("interval_level must be between 0 and 1")
        test = self.test.cutoffs(self.freq)
        if not test:
            raise ValueError("test needs at least one origin")
        if self.validation == "auto":
            return self
        val = self.validation.cutoffs(self.freq)
        if not val:
            raise ValueError("validation needs at least one origin")
        # The last validation target must be known before the first test cutoff: validation
        # origins end at least `horizon` periods before it.
        latest_val = period_end(shift_period(test[0], self.freq, -self.horizon), self.freq)
        late = [d for d in val if d > latest_val]
        if late:
            raise ValueError(f"validation origins {late} are not strictly before the first test cutoff "
                             f"{test[0]} (their targets must be known by then: last allowed {latest_val})")
        return self

    def model_keys(self) -> list[str]:
        """Return the registry keys of the models to compare (every registered model by default)."""
        return list(self.models) if self.models else list(MODELS)

    def origins(self, which: Literal["validation", "test", "all"]) -> list[dt.date]:
        """Return the cutoffs of the ``which`` origins, each the last day of its period."""
        if which == "test":
            return self.test.cutoffs(self.freq)
        if self.validation == "auto":
            raise ConfigError("validation: auto has not been resolved against the data (resolve_validation)")
        if which == "validation":
            return self.validation.cutoffs(self.freq)
        if which == "all":
            return sorted(set(self.validation.cutoffs(self.freq)) | set(self.test.cutoffs(self.freq)))
        raise ValueError(f"origins must be validation, test or all, got {which!r}")


def auto_validation_cutoffs(cfg: ExperimentConfig, first_cutoff: dt.date) -> list[dt.date]:
    """List every validation origin the data allow.

    From the first cutoff with a full training window to the last one whose target is known before the first test cutoff.

    Parameters
    ----------
    cfg : ExperimentConfig
        Gives the frequency, horizon, ``train_origins`` and the test origins.
    first_cutoff : datetime.date
        The end of the data's first period.

    Returns
    -------
    list of datetime.date
        The cutoffs, oldest first (empty when the data leave no room).
    """
    freq, h, n = cfg.freq, cfg.horizon, cfg.train_origins
    if isinstance(n, int):  # n training origins: the oldest is n - 1 + h periods before the cutoff
        earliest = period_end(shift_period(first_cutoff, freq, n - 1 + h), freq)
    else:  # "all" or a date: at least one training origin from there on
        start = max(first_cutoff, n) if isinstance(n, dt.date) else first_cutoff
        earliest = period_end(shift_period(period_end(start, freq), freq, h), freq)
    latest = period_end(shift_period(cfg.test.cutoffs(freq)[0], freq, -h), freq)
    out, cur = [], earliest
    while cur <= latest:
        out.append(cur)
        cur = period_end(shift_period(cur, freq, 1), freq)
    return out


def resolve_validation(cfg: ExperimentConfig, first_cutoff: dt.date) -> ExperimentConfig:
    """Replace ``validation: auto`` in ``cfg`` with explicit dates (any other ``cfg`` is returned as is).

    Raises
    ------
    ConfigError
        The data leave no validation origin before the first test cutoff.
    """
    if cfg.validation != "auto":
        return cfg
    dates = auto_validation_cutoffs(cfg, first_cutoff)
    if not dates:
        raise ConfigError(f"validation: auto: the data (first period ending {first_cutoff}) leave no validation "
                          f"origin with {cfg.train_origins} training origin(s) before the first test cutoff "
                          f"{cfg.test.cutoffs(cfg.freq)[0]}; move the test origins later or shorten train_origins")
    return cfg.model_copy(update={"validation": Origins(dates=tuple(dates))})


def protocol_id(experiment: Any) -> str:
    """Identify what makes two test RMSEs comparable: dataset, frequency, horizon and the test origins."""
    dataset = experiment.dataset.model_dump(mode="json")
    if dataset.get("users") is None:  # no user table: the id experiments had before the key existed
        dataset.pop("users", None)
    payload = {
        "dataset": dataset,
        "freq": experiment.freq,
        "horizon": experiment.horizon,
        "test": [d.isoformat() for d in experiment.origins("test")],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(*parts: Any) -> str:
    """Return the SHA-256 of ``parts`` as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
