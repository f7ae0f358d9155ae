"""The ``spendlab reconcile`` job: load the inputs, compare, explain, write the outputs atomically."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from spendlab.io.atomic import atomic_path
from spendlab.io.csv_out import copy_csv
from spendlab.io.load import connect
from spendlab.io.rejects import neutralise_formula
from spendlab.reconcile.compare import ReconcileResult, reconcile_tables
from spendlab.reconcile.inputs import DEFAULT_DELTA_PATTERN, load_reconcile_inputs
from spendlab.reconcile.render import render_html, render_markdown


def run_reconcile(
    deltas: str,
    platform: Path,
    source: Path,
    out_dir: Path,
    *,
    tolerance: float = 0.005,
    rel_tolerance: float = 0.0,
    name_pattern: str | None = None,
    expect_contiguous_batches: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> dict:
    """Run the ``spendlab reconcile`` job: load, compare, explain, and write ``out_dir`` atomically.

    Writes ``summary.json``, ``user_diffs.csv``, ``user_causes.csv``, ``rejects.csv``,
    ``delta_flags.csv``, ``report.md`` and ``report.html``; the directory is built beside
    ``out_dir`` and swapped in only when complete. Returns the summary with ``outputs`` added.
    """
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp, tempfile.TemporaryDirectory(prefix="spendlab-reconcile-") as spill:
        con = connect(threads=threads, memory_limit=memory_limit)
        try:
            con.execute("SET temp_directory = ?", [spill])
            con.execute("SET preserve_insertion_order = true")
            inputs = load_reconcile_inputs(con, deltas, Path(platform), Path(source),
                                           name_pattern=name_pattern or DEFAULT_DELTA_PATTERN)
            result = reconcile_tables(inputs, tolerance=tolerance, rel_tolerance=rel_tolerance,
                                      expect_contiguous_batches=expect_contiguous_batches)
            tmp.mkdir()
            written = write_outputs(result, tmp)
        finally:
            con.close()
    return {**result.summary, "outputs": [str(out_dir / p.name) for p in written]}


def write_outputs(result: ReconcileResult, out_dir: Path) -> list[Path]:
    """Write every output into ``out_dir`` (which must exist); return the paths written."""
    con = result.con
    paths = []
    p = out_dir / "summary.json"
    p.write_text(json.dumps(result.summary, indent=2, default=str) + "\n", encoding="utf-8")
    paths.append(p)
    p = out_dir / "user_diffs.csv"
    copy_csv(con, 'SELECT user_id, "column", platform, source, rebuilt, cause, file, o FROM user_diffs', p,
             order_by="src.user_id, src.o", drop=("o",))
    paths.append(p)
    p = out_dir / "user_causes.csv"
    copy_csv(con, 'SELECT user_id, cause, side, file, class, detail, amount, p_spend AS platform_spend, '
                  's_spend AS source_spend, r_spend AS rebuilt_spend, secondary FROM user_causes', p,
             order_by="src.user_id")
    paths.append(p)
    p = out_dir / "rejects.csv"
    copy_csv(con, 'SELECT dataset, file, line, "column", error_type, raw, message, file_idx FROM rejects', p,
             order_by="src.dataset, src.file_idx, src.line", drop=("file_idx",))
    paths.append(p)
    p = out_dir / "delta_flags.csv"
    flags = result.flags.copy()
    if not flags.empty:
        flags["user_id"] = flags["user_id"].map(neutralise_formula)
        flags["files"] = flags["files"].map(lambda fs: ";".join(fs))
        flags["lines"] = flags["lines"].map(lambda ls: ";".join(str(x) for x in ls))
    flags.to_csv(p, index=False)
    paths.append(p)
    for name, text in (("report.md", render_markdown(result)), ("report.html", render_html(result))):
        p = out_dir / name
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths
