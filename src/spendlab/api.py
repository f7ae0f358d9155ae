"""The Python API for notebooks: ``spendlab.load``, ``describe_transactions``, ``user_features``,
``experiment``, ``score``, ``reconcile_summaries``.

Each function takes a path (file, directory, glob, ``builtin:cdnow``) or a pandas DataFrame plus
keyword settings, calls the same job the CLI calls, and returns a small result object whose tables
are DataFrames. Nothing is written unless ``out=`` is given (scoring, experiments and reconciliation
write into a temporary directory that is read back and removed). The CLI's ``describe`` and
``reconcile`` call these functions; its other commands call the same jobs.

``import spendlab`` stays light: :mod:`spendlab` exposes these names lazily (PEP 562). None of them
is the name of a subpackage, so ``spendlab.describe`` is always the subpackage and
``spendlab.describe_transactions`` always the function, whatever was imported first.
"""
# long: the documented Python API in one module: each function beside its result class

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.calendar import Freq
from spendlab.config import ReaderConfig, parse_config
from spendlab.describe.formats import check_currency
from spendlab.errors import ConfigError, SpendlabError
from spendlab.features.config import FeatureConfig
from spendlab.features.metadata import feature_metadata
from spendlab.forecast.protocol import DatasetSpec, ExperimentConfig
from spendlab.io.load import Transactions, load_transactions, validation_summary
from spendlab.io.rejects import FileReport, LoadReport, Mode
from spendlab.jobs.describe import run_describe
from spendlab.jobs.experiment import execute
from spendlab.jobs.features import features_table, load_feature_config, write_features
from spendlab.jobs.plan import load_experiment, plan_experiment
from spendlab.jobs.reconcile import run_reconcile
from spendlab.jobs.score import score as run_score
from spendlab.jobs.tuned_params import TUNED_DIR
from spendlab.schema import AMOUNT_COL, CANONICAL_SCHEMA, FILE_COL, ITEMS_COL, LINE_COL, TS_COL, USER_COL
from spendlab.settings import DEFAULT_MEMORY_LIMIT
from spendlab.tracking.scorer import LoadedModel, load_model_async

__all__ = ["DescribeResult", "ExperimentResult", "FeaturesResult", "LoadResult", "ReconcileResult", "ScoreResult",
           "describe_transactions", "experiment", "load", "reconcile_summaries", "score", "user_features"]

FRAME_NAME = "dataframe"


@dataclass
class LoadResult:
    """Validated transactions: the canonical rows, the per-file counts and the rejected rows."""

    name: str
    summary: dict[str, Any]
    files: pd.DataFrame
    rejects: pd.DataFrame
    tx: Transactions = field(repr=False)

    @property
    def transactions(self) -> pd.DataFrame:
        """The accepted rows (``user_id, ts, amount, n_items, source_file, line``), read on first use."""
        return self.tx.to_pandas()


Data = str | Path | pd.DataFrame | LoadResult | Transactions


class _FrameTransactions(Transactions):
    """Transactions built from a DataFrame: identified by a hash of their rows (there is no file)."""

    def content_hash(self) -> str:
        assert self.table is not None
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _from_frame(df: pd.DataFrame, *, user_col: str, time_col: str, amount_col: str, name: str) -> Transactions:
    """Canonical transactions from a frame; naive timestamps are UTC. A missing or bad value is an error."""
    missing = [c for c in (user_col, time_col, amount_col) if c not in df.columns]
    if missing:
        raise ConfigError(f"DataFrame is missing required column(s) {missing}; found {list(df.columns)} "
                          f"(name them with user_col=, time_col=, amount_col=)")
    users = df[user_col]
    ts = pd.to_datetime(df[time_col], utc=True, errors="coerce")
    amount = pd.to_numeric(df[amount_col], errors="coerce").astype("float64")
    bad = users.isna() | ts.isna() | amount.isna() | ~amount.abs().lt(float("inf"))
    if bad.any():
        rows = [int(i) for i in bad.to_numpy().nonzero()[0][:5]]
        raise SpendlabError(f"DataFrame: {int(bad.sum())} row(s) with a missing or unreadable {user_col}, {time_col} "
                            f"or {amount_col} (first at positions {rows}); clean or drop them first")
    n_items = pd.to_numeric(df[ITEMS_COL], errors="coerce").astype("Int64") if ITEMS_COL in df.columns \
        else pd.array([None] * len(df), dtype="Int64")
    table = pa.table({
        USER_COL: pa.array(users.astype(str).to_numpy(), pa.string()),
        TS_COL: pa.array(ts.dt.tz_convert("UTC"), pa.timestamp("us", tz="UTC")),
        AMOUNT_COL: pa.array(amount.to_numpy(), pa.float64()),
        ITEMS_COL: pa.array(n_items, pa.int64()),
        FILE_COL: pa.array([name] * len(df), pa.string()),
        LINE_COL: pa.array(range(1, len(df) + 1), pa.int64()),
    }, schema=CANONICAL_SCHEMA)
    report = LoadReport(files=[FileReport(name, rows_in=len(df), accepted=len(df))])
    return _FrameTransactions(name, report, table=table, config=ReaderConfig())


def _reader(reader: ReaderConfig | Mapping[str, Any] | None) -> ReaderConfig:
    if reader is None or isinstance(reader, ReaderConfig):
        return reader or ReaderConfig()
    return parse_config(ReaderConfig, dict(reader), "reader=")


def _transactions(data: Data, *, format: str = "generic", reader: ReaderConfig | Mapping[str, Any] | None = None,
                  mode: Mode | str = Mode.QUARANTINE, user_col: str = USER_COL, time_col: str = TS_COL,
                  amount_col: str = AMOUNT_COL) -> Transactions:
    if isinstance(data, LoadResult):
        return data.tx
    if isinstance(data, Transactions):
        return data
    if isinstance(data, pd.DataFrame):
        return _from_frame(data, user_col=user_col, time_col=time_col, amount_col=amount_col, name=FRAME_NAME)
    if isinstance(data, (str, Path)):
        return load_transactions(str(data), format, config=_reader(reader), mode=Mode(mode))
    raise TypeError(f"expected a path, a DataFrame or a spendlab.load result, got {type(data).__name__}")


def load(data: str | Path | pd.DataFrame, *, format: str = "generic",
         reader: ReaderConfig | Mapping[str, Any] | None = None, mode: Mode | str = Mode.QUARANTINE,
         user_col: str = USER_COL, time_col: str = TS_COL, amount_col: str = AMOUNT_COL) -> LoadResult:
    """Read and validate transactions, as ``spendlab validate`` does.

    Parameters
    ----------
    data
        A file, directory, glob or ``builtin:cdnow``; or a DataFrame with one row per transaction
        (``user_col``, ``time_col``, ``amount_col``; naive times are UTC, refunds negative).
    format
        ``generic``, ``cdnow`` or ``millions`` (files only).
    reader
        Reader policy: a :class:`~spendlab.config.ReaderConfig` or the ``reader:`` mapping of a config file.
    mode
        ``quarantine`` (bad rows go to ``rejects``), ``collect`` or ``strict`` (raise).
    """
    tx = _transactions(data, format=format, reader=reader, mode=mode, user_col=user_col, time_col=time_col,
                       amount_col=amount_col)
    files = pd.DataFrame([f.as_dict() for f in tx.report.files])
    rejects = pd.DataFrame([(r.file, r.line, r.column, r.error_type, r.raw, r.message) for r in tx.report.rejects],
                           columns=["file", "line", "column", "error_type", "raw", "message"])
    return LoadResult(tx.name, validation_summary(tx), files, rejects, tx)


# --- describe ---------------------------------------------------------------------------------


@dataclass
class DescribeResult:
    """The describe report: summary, every table (unrounded numbers, real dates) and the HTML page."""

    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    html: str = field(repr=False)
    out_dir: Path | None = None

    @property
    def monthly_overview(self) -> pd.DataFrame:
        """Spend, users and transactions per calendar month."""
        return self.tables["monthly_overview"]

    @property
    def per_user(self) -> pd.DataFrame:
        """One row per user: transactions, gross spend, average transaction value, refunds."""
        return self.tables["avg_transaction_value_per_user"]

    @property
    def top_spenders(self) -> pd.DataFrame:
        return self.tables["top_spenders"]

    def save_html(self, path: str | Path) -> Path:
        """Write the self-contained report page to ``path``."""
        Path(path).write_text(self.html, encoding="utf-8")
        return Path(path)


def describe_transactions(data: Data, *, out: str | Path | None = None, format: str = "generic",
             reader: ReaderConfig | Mapping[str, Any] | None = None, mode: Mode | str = Mode.QUARANTINE,
             country: str = "US", top_n: int = 20, currency: str | None = None, net_refunds: bool | None = None,
             per_user_tables: bool = True, memory_limit: str | None = DEFAULT_MEMORY_LIMIT, threads: int | None = None,
             tables: Literal["csv", "parquet"] = "csv", **columns: str) -> DescribeResult:
    """Describe transactions: monthly spend, per-user values, days with spend per week, insights.

    ``out`` writes the CSVs, figures and ``report.html`` as ``spendlab describe --out`` does.
    ``per_user_tables=False`` leaves the per-user tables (one row per user, user-month, user-week)
    out of ``tables`` (they stay in the CSVs), for inputs with millions of users; ``tables="parquet"``
    writes those per-user tables under ``out`` as Parquet instead of CSV. ``net_refunds``
    defaults to the reader policy (``refunds: net``). Other keywords name the DataFrame columns
    (``user_col``, ``time_col``, ``amount_col``).
    """
    check_currency(currency)  # before any data is read
    tx = _transactions(data, format=format, reader=reader, mode=mode, **columns)
    if net_refunds is None:
        net_refunds = tx.config is not None and tx.config.refunds == "net"
    res = run_describe(tx, None if out is None else Path(out), country=country, top_n=top_n, net_refunds=net_refunds,
                       currency=currency, memory_limit=memory_limit, threads=threads, collect=per_user_tables,
                       table_format=tables)
    tables = {k: _whole_counts(v) for k, v in res["tables"].items()}  # type: ignore[attr-defined]
    return DescribeResult(res["summary"], tables, res["html"],  # type: ignore[arg-type]
                          None if out is None else Path(out))


def _whole_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Counts summed in DuckDB arrive as floats (HUGEINT); give them back as integers."""
    counts = [c for c in df.columns if df[c].dtype.kind == "f" and (c.startswith("n_") or c.endswith("_users"))
              and df[c].notna().all() and (df[c] % 1 == 0).all()]
    return df.astype({c: "int64" for c in counts}) if counts else df


# --- features ---------------------------------------------------------------------------------


@dataclass
class FeaturesResult:
    """As-of features: one row per user seen by the cutoff (``table``; ``arrow`` without the pandas copy)."""

    arrow: pa.Table = field(repr=False)
    as_of: dt.date
    freq: str
    metadata: dict[str, str] = field(repr=False)
    path: Path | None = None

    @cached_property
    def table(self) -> pd.DataFrame:
        return self.arrow.to_pandas()


def user_features(data: Data, *, freq: Freq = "month", as_of: dt.date | str | None = None,
             config: FeatureConfig | str | Path | None = None, out: str | Path | None = None,
             format: str = "generic", reader: ReaderConfig | Mapping[str, Any] | None = None,
             mode: Mode | str = Mode.QUARANTINE, threads: int | None = 2, memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
             **columns: str) -> FeaturesResult:
    """Leakage-safe features as of a cutoff (default: the end of the latest complete period).

    Only transactions on or before ``as_of`` are read. ``config`` is a feature-set YAML path or a
    :class:`~spendlab.features.config.FeatureConfig` (default: spendlab's feature set). ``out`` writes
    the Parquet file ``spendlab features --out`` writes (with its ``spendlab.*`` metadata).
    """
    if freq not in ("month", "week"):
        raise ConfigError(f"freq must be month or week, got {freq!r}")
    cutoff = _date(as_of, "as_of")
    fcfg = config if isinstance(config, FeatureConfig) else load_feature_config(config)
    tx = _transactions(data, format=format, reader=reader, mode=mode, **columns)
    table, cutoff = features_table(tx, freq=freq, as_of=cutoff, config=fcfg, threads=threads,
                                   memory_limit=memory_limit)
    source = str(data) if isinstance(data, (str, Path)) else tx.name
    meta = feature_metadata(fcfg, freq=freq, as_of=cutoff, input=source, rows_accepted=str(tx.report.accepted),
                            rows_rejected=str(tx.report.rejected))
    path = write_features(table, out, meta) if out is not None else None
    return FeaturesResult(table, cutoff, freq, meta, path)


def _date(value: dt.date | str | None, name: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None


# --- experiment -------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """A backtest of several models: the leaderboard, the champion and the test-origin predictions."""

    name: str
    leaderboard: pd.DataFrame
    champion: str
    predictions: pd.DataFrame
    run_id: str
    ensemble_weights: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None


def experiment(data: Data | None = None, *, config: str | Path | Mapping[str, Any] | ExperimentConfig,
               models: Sequence[str] | None = None, out: str | Path | None = None, tracking_uri: str | None = None,
               tuned_dir: str | Path = TUNED_DIR, jobs: int | None = None, format: str | None = None,
               **columns: str) -> ExperimentResult:
    """Backtest models on rolling origins and log them to MLflow, as ``spendlab experiment run`` does.

    ``config`` is an experiment YAML (``experiments/cdnow.yaml``), the same keys as a mapping, or an
    :class:`~spendlab.forecast.protocol.ExperimentConfig`; ``data`` (a path or DataFrame) replaces its
    dataset (a mapping may then leave ``dataset`` out). ``models`` overrides its model list;
    ``tracking_uri`` its MLflow store (default ``sqlite:///mlruns/mlflow.db``).
    """
    label = str(data) if isinstance(data, (str, Path)) else FRAME_NAME if isinstance(data, pd.DataFrame) \
        else str(getattr(data, "name", FRAME_NAME))
    given = {"input": label, "format": format or "generic"}
    if isinstance(config, ExperimentConfig):
        cfg, path = config, None
    elif isinstance(config, Mapping):
        raw = dict(config)
        if data is not None:
            raw.setdefault("dataset", given)
        cfg, path = parse_config(ExperimentConfig, raw, "config="), None
    else:
        cfg, path = load_experiment(config), Path(config)
    tx = None
    if data is not None:  # the data replaces the config's dataset, in MLflow and in the protocol id too
        tx = _transactions(data, format=format or cfg.dataset.format, reader=cfg.reader, **columns)
        cfg = cfg.model_copy(update={"dataset": DatasetSpec(input=given["input"],
                                                             format=format or cfg.dataset.format)})
    with _out_dir(out, "spendlab-experiment-") as out_dir:
        plan = plan_experiment(cfg, experiment_path=path, models=list(models) if models else None,
                               tuned_dir=Path(tuned_dir))
        res = execute(plan, out_dir=out_dir, tracking_uri=tracking_uri, transactions=tx, jobs=jobs)
        predictions = pd.read_parquet(res.paths["predictions"])
    return ExperimentResult(res.name, res.leaderboard, res.champion, predictions, res.parent_run_id,
                            dict(res.ensemble_weights), None if out is None else Path(out))


class _out_dir:
    """``out`` as a Path, or a temporary directory removed on exit."""

    def __init__(self, out: str | Path | None, prefix: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix) if out is None else None
        self.path = Path(self._tmp.name) if self._tmp is not None else Path(out)  # type: ignore[arg-type]

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


# --- score ------------------------------------------------------------------------------------


@dataclass
class ScoreResult:
    """Next-period predictions with an interval: one row per user seen by the cutoff (``scores``)."""

    as_of: dt.date
    target_period: str
    model_uri: str
    model_version: str
    by_basis: dict[str, int]
    users: int
    total_prediction: float
    path: Path | None = None
    _scores: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def scores(self) -> pd.DataFrame:
        """``user_id, as_of, target_period, prediction, lower, upper, segment, basis, model_uri, model_version``."""
        if self._scores is None:
            assert self.path is not None
            self._scores = pq.read_table(self.path).to_pandas()  # read on first use when kept in a file
        return self._scores


def score(data: Data, *, model: str | LoadedModel = "models:/spendlab-next-month@champion",
          as_of: dt.date | str | None = None, out: str | Path | None = None, format: str = "generic",
          reader: ReaderConfig | Mapping[str, Any] | None = None, chunk_users: int = 250_000,
          tracking_uri: str | None = None, progress: bool = False, **columns: str) -> ScoreResult:
    """Score every user's next-period spend with the registered model, as ``spendlab score`` does.

    ``model`` is an MLflow model URI (default: the ``@champion`` of ``spendlab-next-month``) or a
    model already loaded with :func:`spendlab.tracking.scorer.load_model`. ``as_of`` defaults to the
    end of the latest complete period in the data. ``out`` keeps the Parquet file.
    """
    cutoff = _date(as_of, "as_of")
    loading = load_model_async(model, tracking_uri=tracking_uri) if isinstance(model, str) else model
    tx = _transactions(data, format=format, reader=reader, **columns)  # read while the model loads
    with _out_dir(None, "spendlab-score-") as tmp:
        path = Path(out) if out is not None else tmp / "scores.parquet"
        res = run_score(tx, out=path, model=loading, as_of=cutoff, chunk_users=chunk_users, progress=progress)
        scores = pq.read_table(path).to_pandas() if out is None else None
    return ScoreResult(res.as_of, res.target_period, res.model_uri, res.model_version, dict(res.by_basis),
                       res.rows_out, res.total_prediction, None if out is None else Path(out), scores)


# --- reconcile --------------------------------------------------------------------------------


@dataclass
class ReconcileResult:
    """Platform vs source user summaries, rebuilt from the deltas, with every difference explained."""

    summary: dict[str, Any]
    user_diffs: pd.DataFrame
    user_causes: pd.DataFrame
    rejects: pd.DataFrame
    delta_flags: pd.DataFrame
    report_md: str = field(repr=False)
    out_dir: Path | None = None

    @property
    def causes(self) -> pd.DataFrame:
        """The headline: amount and users per cause."""
        return pd.DataFrame(self.summary.get("causes", []))


def reconcile_summaries(deltas: str | Path | Sequence[pd.DataFrame], *, platform: str | Path | pd.DataFrame,
              source: str | Path | pd.DataFrame, out: str | Path | None = None, tolerance: float = 0.005,
              rel_tolerance: float = 0.0, pattern: str | None = None, contiguous_batches: bool = False,
              memory_limit: str | None = None) -> ReconcileResult:
    """Rebuild the user summary from the deltas, compare it with both summaries, explain each difference.

    ``deltas`` is a glob or folder of delta CSVs, or a list of DataFrames (in delta order);
    ``platform`` and ``source`` are user-summary CSVs or DataFrames. DataFrames are written to a
    temporary folder as CSV and read by the same validating readers as files.
    """
    with tempfile.TemporaryDirectory(prefix="spendlab-reconcile-in-") as staging, \
            _out_dir(out, "spendlab-reconcile-") as out_dir:
        stage = Path(staging)
        if not isinstance(deltas, (str, Path)):
            folder = stage / "deltas"
            folder.mkdir()
            for k, frame in enumerate(deltas, start=1):
                frame.to_csv(folder / f"delta{k}.csv", index=False)
            deltas = folder
        platform = _staged(platform, stage / "platform.csv")
        source = _staged(source, stage / "source.csv")
        target = out_dir if out is not None else out_dir / "reconcile"
        summary = run_reconcile(str(deltas), platform, source, target, tolerance=tolerance,
                                rel_tolerance=rel_tolerance, name_pattern=pattern,
                                expect_contiguous_batches=contiguous_batches, memory_limit=memory_limit)
        keep = {"keep_default_na": False, "dtype": {"user_id": str, "file": str}}
        frames = {name: pd.read_csv(target / f"{name}.csv", **keep)  # type: ignore[arg-type]
                  for name in ("user_diffs", "user_causes", "rejects", "delta_flags")}
        report_md = (target / "report.md").read_text(encoding="utf-8")
    if out is None:
        summary.pop("outputs", None)  # they were in a temporary folder
    return ReconcileResult(summary, frames["user_diffs"], frames["user_causes"], frames["rejects"],
                           frames["delta_flags"], report_md, None if out is None else Path(out))


def _staged(table: str | Path | pd.DataFrame, path: Path) -> Path:
    if isinstance(table, pd.DataFrame):
        table.to_csv(path, index=False)
        return path
    return Path(table)
