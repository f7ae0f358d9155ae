"""Report jobs: descriptive insights and delta/summary reconciliation."""
