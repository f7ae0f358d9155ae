"""Offer the Python API for notebooks.

``spendlab.load``, ``describe_transactions``, ``user_features``, ``experiment``, ``score`` and
``reconcile_summaries``.

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
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spendlab.calendar import Freq
from spendlab.config import ReaderConfig, parse_config
from spendlab.describe.formats import check_currency
from spendlab.errors import ConfigError
from spendlab.features.config import FeatureConfig
from spendlab.features.metadata import feature_metadata
from spendlab.io.load import Transactions, connect, load_transactions, validation_summary
from spendlab.io.rejects import Mode
from spendlab.jobs.describe import run_describe
from spendlab.jobs.features import features_table, load_feature_config, write_features
from spendlab.jobs.frame_input import frame_mapping, load_frame
from spendlab.jobs.reconcile import run_reconcile
from spendlab.jobs.tuned_params import TUNED_DIR
from spendlab.schema import AMOUNT_COL, TS_COL, USER_COL
from spendlab.settings import DEFAULT_MEMORY_LIMIT

if TYPE_CHECKING:  # experiment() and score() import these when called: MLflow and scikit-learn load on first use
    import duckdb

    from spendlab.forecast.protocol import ExperimentConfig
    from spendlab.tracking.scorer import LoadedModel

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


def _reader(reader: ReaderConfig | Mapping[str, Any] | None) -> ReaderConfig:
    if reader is None or isinstance(reader, ReaderConfig):
        return reader or ReaderConfig()
    return parse_config(ReaderConfig, dict(reader), "reader=")


def _transactions(data: Data, *, format: str = "generic", reader: ReaderConfig | Mapping[str, Any] | None = None,
                  mode: Mode | str = Mode.QUARANTINE, user_col: str = USER_COL, time_col: str = TS_COL,
                  amount_col: str = AMOUNT_COL, con: duckdb.DuckDBPyConnection | None = None) -> Transactions:
    if isinstance(data, LoadResult):
        return data.tx
    if isinstance(data, Transactions):
        return data
    if isinstance(data, pd.DataFrame):  # the generic Parquet reader's policy, the same modes
        cfg = frame_mapping(_reader(reader), user_col=user_col, time_col=time_col, amount_col=amount_col)
        return load_frame(data, reader=cfg, mode=Mode(mode), name=FRAME_NAME, con=con)
    if isinstance(data, (str, Path)):
        return load_transactions(str(data), format, config=_reader(reader), mode=Mode(mode), con=con)
    raise TypeError(f"expected a path, a DataFrame or a spendlab.load result, got {type(data).__name__}")


def load(data: str | Path | pd.DataFrame, *, format: str = "generic",
         reader: ReaderConfig | Mapping[str, Any] | None = None, mode: Mode | str = Mode.QUARANTINE,
         user_col: str = USER_COL, time_col: str = TS_COL, amount_col: str = AMOUNT_COL) -> LoadResult:
    """Read and validate transactions, as ``spendlab validate`` does.

    Parameters
    ----------
    data
        A file, directory, glob or ``builtin:cdnow``; or a DataFrame with one row per transaction
        (``user_col``, ``time_col``, ``amount_col``), validated exactly as a generic Parquet file with
        the same columns and types (:mod:`spendlab.jobs.frame_input`); its rejects name row index labels.
    format
        ``generic``, ``cdnow`` or ``millions`` (files only).
    reader
        Reader policy: a :class:`~spendlab.config.ReaderConfig` or the ``reader:`` mapping of a config file.
    mode
        ``quarantine`` (bad rows go to ``rejects``), ``collect`` or ``strict`` (raise).
    user_col, time_col, amount_col
        The DataFrame's column names.

    Returns
    -------
    LoadResult
        The canonical rows, the validation summary, per-file counts and the rejected rows.

    Raises
    ------
    ConfigError
        A setting or config is invalid (one line naming it).
    InputFileError
        An input file cannot be read (empty, wrong header, corrupt).
    RowError
        ``mode="strict"`` and a row is invalid.
    """
    with connect() as con:  # one DuckDB connection validates, reads back and counts
        tx = _transactions(data, format=format, reader=reader, mode=mode, user_col=user_col, time_col=time_col,
                           amount_col=amount_col, con=con)
        summary = validation_summary(tx, con)
    files = pd.DataFrame([f.as_dict() for f in tx.report.files])
    rejects = pd.DataFrame([(r.file, r.line, r.column, r.error_type, r.raw, r.message) for r in tx.report.rejects],
                           columns=["file", "line", "column", "error_type", "raw", "message"])
    return LoadResult(tx.name, summary, files, rejects, tx)


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
        """Return the users with the highest gross spend."""
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

    Parameters
    ----------
    data
        A file, directory, glob or ``builtin:cdnow``; or a DataFrame with one row per transaction
        (its columns named by ``user_col``, ``time_col``, ``amount_col`` in ``columns``).
    out
        A folder to write the CSVs, figures and ``report.html`` to, as ``spendlab describe --out`` does.
    format, reader, mode
        The input format, reader policy and validation mode, as in :func:`load`.
    country
        The holiday calendar (``holidays`` country code).
    top_n
        Rows in the report's top/bottom tables.
    currency
        An ISO 4217 code shown with money, or None.
    net_refunds
        Subtract refunds from spend; default: the reader policy (``refunds: net``).
    per_user_tables
        ``False`` leaves the per-user tables (user, user-month, user-week) out of ``tables`` (they stay
        in the CSVs), for inputs with millions of users.
    tables
        ``"csv"`` (default) or ``"parquet"``: the format of the per-user tables written under ``out``.
    memory_limit, threads
        DuckDB's limits.

    Returns
    -------
    DescribeResult
        The summary, every table and the HTML page.

    Raises
    ------
    ConfigError
        A setting or config is invalid (one line naming it).
    InputFileError
        An input file cannot be read (empty, wrong header, corrupt).
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
    """Turn counts summed in DuckDB (HUGEINT, so floats) back into integers."""
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
        """Return the table as a pandas DataFrame (converted once, on first use)."""
        return self.arrow.to_pandas()


def user_features(data: Data, *, freq: Freq = "month", as_of: dt.date | str | None = None,
             config: FeatureConfig | str | Path | None = None, out: str | Path | None = None,
             format: str = "generic", reader: ReaderConfig | Mapping[str, Any] | None = None,
             mode: Mode | str = Mode.QUARANTINE, threads: int | None = 2, memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
             **columns: str) -> FeaturesResult:
    """Compute leakage-safe features as of a cutoff; only transactions on or before it are read.

    Parameters
    ----------
    data
        A file, directory, glob or ``builtin:cdnow``; or a DataFrame with one row per transaction
        (its columns named by ``user_col``, ``time_col``, ``amount_col`` in ``columns``).
    freq
        ``month`` or ``week``.
    as_of
        The cutoff (default: the end of the latest complete period in the data).
    config
        A feature-set YAML path or a :class:`~spendlab.features.config.FeatureConfig` (default:
        spendlab's feature set).
    out
        Write the Parquet file ``spendlab features --out`` writes (with its ``spendlab.*`` metadata).
    format, reader, mode
        The input format, reader policy and validation mode, as in :func:`load`.
    threads, memory_limit
        DuckDB's limits.

    Returns
    -------
    FeaturesResult
        One row per user seen by the cutoff, and the cutoff used.

    Raises
    ------
    ConfigError
        A setting or config is invalid (one line naming it).
    InputFileError
        An input file cannot be read (empty, wrong header, corrupt).
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

    Parameters
    ----------
    data, format
        A path (read in ``format``) or DataFrame that replaces the experiment's dataset (a mapping
        config may then leave ``dataset`` out); None reads the dataset the config names.
    config
        An experiment YAML (``experiments/cdnow.yaml``), the same keys as a mapping, or an
        :class:`~spendlab.forecast.protocol.ExperimentConfig`.
    models
        Overrides the experiment's model list (registry keys).
    out
        A folder to keep the leaderboard, predictions and report in (default: a temporary one).
    tracking_uri
        The MLflow store (default ``sqlite:///mlruns/mlflow.db``).
    tuned_dir, jobs
        Where ``spendlab tune`` wrote tuned parameters; backtests run at once.

    Returns
    -------
    ExperimentResult
        The leaderboard, the champion and the test-origin predictions.

    Raises
    ------
    ConfigError
        A setting or config is invalid (one line naming it).
    InputFileError
        An input file cannot be read (empty, wrong header, corrupt).
    """
    from spendlab.forecast.protocol import DatasetSpec  # defer: sklearn
    from spendlab.jobs.experiment import execute  # defer: mlflow, sklearn
    from spendlab.jobs.plan import plan_experiment  # defer: sklearn

    label = str(data) if isinstance(data, (str, Path)) else FRAME_NAME if isinstance(data, pd.DataFrame) \
        else str(getattr(data, "name", FRAME_NAME))
    given = {"input": label, "format": format or "generic"}
    cfg, path = _experiment_config(config, given if data is not None else None)
    tx = None
    if data is not None:  # the data replaces the config's dataset, in MLflow and in the protocol id too
        tx = _transactions(data, format=format or cfg.dataset.format, reader=cfg.reader, **columns)
        cfg = cfg.model_copy(update={"dataset": DatasetSpec(input=given["input"],
                                                             format=format or cfg.dataset.format)})
    with _out_dir(out, "spendlab-experiment-") as out_dir:
        plan = plan_experiment(cfg, experiment_path=path, models=list(models) if models else None,
                               tuned_dir=Path(tuned_dir), check_sources=tx is None)
        res = execute(plan, out_dir=out_dir, tracking_uri=tracking_uri, transactions=tx, jobs=jobs)
        predictions = pd.read_parquet(res.paths["predictions"])
    return ExperimentResult(res.name, res.leaderboard, res.champion, predictions, res.parent_run_id,
                            dict(res.ensemble_weights), None if out is None else Path(out))


def _experiment_config(config: str | Path | Mapping[str, Any] | ExperimentConfig,
                       dataset: dict[str, str] | None) -> tuple[ExperimentConfig, Path | None]:
    """Resolve ``config`` (and the YAML path it came from, if any); ``dataset`` fills a mapping's gap."""
    from spendlab.forecast.protocol import ExperimentConfig  # defer: sklearn
    from spendlab.jobs.plan import load_experiment  # defer: sklearn

    if isinstance(config, ExperimentConfig):
        return config, None
    if isinstance(config, Mapping):
        raw = dict(config)
        if dataset is not None:
            raw.setdefault("dataset", dataset)
        return parse_config(ExperimentConfig, raw, "config="), None
    return load_experiment(config), Path(config)


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

    Parameters
    ----------
    data
        A file, directory, glob or ``builtin:cdnow``; or a DataFrame with one row per transaction
        (its columns named by ``user_col``, ``time_col``, ``amount_col`` in ``columns``).
    model
        An MLflow model URI (default: the ``@champion`` of ``spendlab-next-month``) or a model already
        loaded with :func:`spendlab.tracking.scorer.load_model`.
    as_of
        The cutoff (default: the end of the latest complete period in the data).
    out
        Keep the Parquet file of scores here.
    format, reader
        The input format and reader policy, as in :func:`load`.
    chunk_users
        Users scored per batch (bounds memory).
    tracking_uri
        The MLflow store the model URI resolves in.
    progress
        Print progress lines.

    Returns
    -------
    ScoreResult
        One row per user seen by the cutoff: expected spend, P(spend), median and 80% interval.

    Raises
    ------
    ConfigError
        A setting or config is invalid (one line naming it).
    InputFileError
        An input file cannot be read (empty, wrong header, corrupt).
    """
    from spendlab.jobs.score import score as run_score  # defer: mlflow, sklearn
    from spendlab.tracking.scorer import load_model_async  # defer: mlflow

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

    Parameters
    ----------
    deltas
        A glob or folder of delta CSVs, or a list of DataFrames (in delta order). DataFrames are
        written to a temporary folder as CSV and read by the same validating readers as files.
    platform, source
        The platform's and the client's user summaries: CSV paths or DataFrames.
    out
        A folder for the reports and tables, as ``spendlab reconcile --out`` writes.
    tolerance, rel_tolerance
        Money matches when ``|a - b| <= tolerance + rel_tolerance * |b|``.
    pattern
        The regular expression a delta file's name matches (default: ``delta<k>.csv`` names).
    contiguous_batches
        Report gaps in the sequence of batch ids (a batch no file contains).
    memory_limit
        DuckDB's memory limit.

    Returns
    -------
    ReconcileResult
        The summary, the causes and one primary cause per differing user.

    Raises
    ------
    ConfigError
        A setting or config is invalid (one line naming it).
    InputFileError
        An input file cannot be read (empty, wrong header, corrupt).
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
