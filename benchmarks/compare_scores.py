"""Check: two score Parquet files hold the same rows, column by column (floats to a relative tolerance).

Used to show a change to the scorer moves no score: run ``spendlab score`` with the old and the new
code on the same input, model and cutoff, then::

    .venv/bin/python benchmarks/compare_scores.py OLD.parquet NEW.parquet [--rtol 1e-12]

Prints, per column, whether it is identical and the largest relative difference; exits 1 on any
difference beyond ``--rtol`` (or in row count, order of ``user_id`` or a text column).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rtol", type=float, default=1e-12)
    args = ap.parse_args()
    old, new = pq.read_table(args.old), pq.read_table(args.new)
    ok = old.num_rows == new.num_rows and old.column_names == new.column_names
    print(f"rows {old.num_rows:,} vs {new.num_rows:,}; columns equal: {old.column_names == new.column_names}")
    for name in old.column_names if ok else []:
        a, b = old.column(name), new.column(name)
        if pa.types.is_floating(a.type) and a.type.equals(b.type):
            x, y = a.to_numpy(), b.to_numpy()
            rel = np.abs(x - y) / np.maximum(np.maximum(np.abs(x), np.abs(y)), np.finfo(float).tiny)
            worst = float(rel.max()) if len(rel) else 0.0
            same = bool(np.array_equal(x, y))
            good = worst <= args.rtol
            print(f"{name}: {'identical' if same else 'differs'}; max relative difference {worst:.3g}")
        else:
            good = same = a.equals(b)
            print(f"{name}: {'identical' if same else 'DIFFERS'}")
        ok = ok and good
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
