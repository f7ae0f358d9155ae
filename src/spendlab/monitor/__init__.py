"""Monitoring a registered model on the periods that actually happen: realized accuracy, drift, verdict.

Pure functions over frames: :mod:`~spendlab.monitor.accuracy` joins a scoring run's rows with the
realized spend and measures them (with the backtests' own metric code), :mod:`~spendlab.monitor.drift`
compares the scored population with the reference profile logged at promotion and estimates the
coming period before any actual is known, :mod:`~spendlab.monitor.verdict` turns both into
``ok`` / ``warn`` / ``retrain``.
"""
