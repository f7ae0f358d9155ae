"""Per-user spend panels and leakage-safe as-of features, built in DuckDB."""
