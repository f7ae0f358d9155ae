"""Diagnostic figures of one model's backtest (logged to MLflow as artifacts; never shown).

- calibration: mean predicted vs mean actual next-period spend by decile of the prediction;
- error by segment: RMSE per segment (new / active / lapsed) and test origin;
- feature importance: top features where the model has importances (trees, |coef| of GLMs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from spendlab.forecast.backtest import BacktestResult


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def calibration_table(predictions: pd.DataFrame, n_bins: int = 10) -> pd.DataFrame:
    """Mean prediction and mean actual per prediction decile (ties share a decile by rank order)."""
    p = predictions["y_pred"].to_numpy(dtype=np.float64)
    ranks = pd.Series(p).rank(method="first").to_numpy()
    decile = np.minimum((ranks - 1) * n_bins // max(len(p), 1), n_bins - 1).astype(int) + 1
    frame = pd.DataFrame({"decile": decile, "y_pred": p, "y_true": predictions["y_true"].to_numpy()})
    return frame.groupby("decile", as_index=False).agg(mean_pred=("y_pred", "mean"), mean_actual=("y_true", "mean"),
                                                        n=("y_pred", "size"))


def calibration_figure(predictions: pd.DataFrame, title: str) -> Any:
    """Draw mean predicted against mean actual spend per decile of the prediction (test origins)."""
    plt = _plt()
    t = calibration_table(predictions)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t["decile"], t["mean_pred"], marker="o", label="mean predicted")
    ax.plot(t["decile"], t["mean_actual"], marker="s", label="mean actual")
    ax.set_xlabel("decile of predicted spend (test origins)")
    ax.set_ylabel("next-period spend per user")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def segment_error_figure(per_origin: pd.DataFrame, title: str) -> Any:
    """Draw each segment's test RMSE per origin."""
    plt = _plt()
    test = per_origin[per_origin["split"] == "test"]
    cols = [c for c in ("rmse_new", "rmse_active", "rmse_lapsed") if c in test.columns]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(test))
    width = 0.8 / max(len(cols), 1)
    for i, c in enumerate(cols):
        ax.bar(x + i * width, test[c].fillna(0.0), width, label=c.removeprefix("rmse_"))
    ax.set_xticks(x + width * (len(cols) - 1) / 2, [str(c) for c in test["cutoff"]], rotation=45, ha="right")
    ax.set_ylabel("RMSE")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def importance_table(estimator: Any, feature_names: list[str]) -> pd.DataFrame | None:
    """Feature importances of a fitted estimator, or ``None`` when it has none."""
    try:
        imp = np.asarray(estimator.feature_importances_, dtype=np.float64)
    except (AttributeError, ValueError):
        return None
    names = list(getattr(estimator, "feature_names_in_", feature_names))
    if len(names) != len(imp):
        return None
    return pd.DataFrame({"feature": names, "importance": imp}).sort_values("importance", ascending=False,
                                                                           ignore_index=True)


def importance_figure(table: pd.DataFrame, title: str, top: int = 20) -> Any:
    """Draw the ``top`` most important features."""
    plt = _plt()
    t = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(t) + 1.5))
    ax.barh(t["feature"], t["importance"])
    ax.set_title(title)
    fig.tight_layout()
    return fig


def model_figures(result: BacktestResult, feature_names: list[str]) -> dict[str, Any]:
    """``{artifact name: figure}`` for one model's backtest."""
    test = result.predictions[result.predictions["split"] == "test"]
    figs = {"figures/calibration.png": calibration_figure(test, f"{result.model_key}: calibration by decile"),
            "figures/error_by_segment.png": segment_error_figure(result.per_origin,
                                                                 f"{result.model_key}: RMSE by segment")}
    if result.estimator is not None:
        table = importance_table(result.estimator, feature_names)
        if table is not None:
            figs["figures/feature_importance.png"] = importance_figure(
                table, f"{result.model_key}: feature importance (last origin)")
    return figs
