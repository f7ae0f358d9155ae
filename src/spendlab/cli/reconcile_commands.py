"""The ``reconcile`` command: rebuild a user summary from deltas, compare, explain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from spendlab.cli.common import out
from spendlab.io.safe_out import check_output
from spendlab.settings import check_tolerance, compile_pattern, parse_memory_limit


def reconcile(
    deltas: Annotated[str, typer.Option("--deltas", help="Glob or folder of delta CSVs (natural order; files not "
                                        "named like delta<N>.csv are listed as ignored).")],
    platform: Annotated[Path, typer.Option("--platform", help="The platform's user-summary CSV.")],
    source: Annotated[Path, typer.Option("--source", help="The client's user-summary export CSV.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (replaced atomically).")],
    fail_on_diff: Annotated[bool, typer.Option("--fail-on-diff", help="Exit 3 when any user differs.")] = False,
    tolerance: Annotated[float, typer.Option(help="Absolute tolerance for money columns.")] = 0.005,
    pattern: Annotated[str | None, typer.Option(help="Regex a delta file name must match.")] = None,
    contiguous_batches: Annotated[bool, typer.Option(help="Report gaps in the batch id sequence.")] = False,
    memory_limit: Annotated[str | None, typer.Option(help="DuckDB memory limit, e.g. 4GB.")] = None,
) -> None:
    """Rebuild the user summary from the deltas, compare both summaries, and explain every difference.

    Writes summary.json, user_diffs.csv, user_causes.csv, rejects.csv, delta_flags.csv, report.md and
    report.html. Exit 0 when it ran; with --fail-on-diff, exit 3 when any difference exists.
    """
    from spendlab import api  # defer: mlflow, sklearn, sqlglot
    check_tolerance(tolerance), compile_pattern(pattern), parse_memory_limit(memory_limit)
    check_output(out_dir, kind="dir", inputs=[deltas, platform, source])
    s = api.reconcile_summaries(deltas, platform=platform, source=source, out=out_dir, tolerance=tolerance, pattern=pattern,
                      contiguous_batches=contiguous_batches, memory_limit=memory_limit).summary
    out.print(f"source {s['source_total']:,.2f}  platform {s['platform_total']:,.2f}  gap {s['gap']:,.2f}  "
              f"explained {s['explained']:,.2f}  unexplained {s['unexplained']:,.2f} "
              f"({s['users']['unexplained']} users)", highlight=False, soft_wrap=True)
    for c in s["causes"]:
        out.print(f"  {c['cause']:<26} {c['side']:<8} {escape(c['file'] or '-'):<20} {c['users']:>8} users "
                  f"{c['amount']:>16,.2f}", highlight=False, soft_wrap=True)
    out.print(f"outputs in {escape(str(out_dir))}", highlight=False)
    if fail_on_diff and s["users"]["differing"]:
        raise typer.Exit(3)
