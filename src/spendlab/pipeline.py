"""The main job: every stage on one dataset, driven by ``configs/pipeline.yaml``.

Each stage is a function taking the resolved config and returning what it wrote; the job prints
where everything is at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from spendlab.config import ReaderConfig, StrictModel
from spendlab.io import load_transactions
from spendlab.io.load import validation_summary
from spendlab.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from rich.console import Console


class PipelineConfig(StrictModel):
    """``configs/pipeline.yaml``."""

    input: str = "builtin:cdnow"
    format: str = "cdnow"
    out_dir: Path = Path("outputs")
    reader: ReaderConfig = ReaderConfig()


def stage_validate(cfg: PipelineConfig) -> dict[str, object]:
    """Load and validate the input; write ``validation.json``."""
    tx = load_transactions(cfg.input, cfg.format, config=cfg.reader)
    summary = validation_summary(tx)
    path = cfg.out_dir / "validation.json"
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    return {"validation": str(path), "summary": summary}


def run_pipeline(cfg: PipelineConfig, console: "Console | None" = None) -> dict[str, object]:
    """Run every stage in order with a progress display; return what each stage wrote."""
    from rich.console import Console

    console = console or Console(stderr=True)
    results: dict[str, object] = {}
    stages = [("validate", stage_validate)]
    for i, (name, fn) in enumerate(stages, 1):
        with console.status(f"[{i}/{len(stages)}] {name} ..."):
            results[name] = fn(cfg)
        console.print(f"[green]done[/] [{i}/{len(stages)}] {name}")
    summary = results["validate"]["summary"]  # type: ignore[index]
    console.print(f"validated {cfg.input}: {summary['users']:,} users, total spend {summary['total_spend']:,.2f}")
    console.print(f"outputs: {cfg.out_dir}/validation.json")
    return results
