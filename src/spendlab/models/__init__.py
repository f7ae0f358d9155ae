"""Forecasters behind one registry (``spendlab.models.registry``)."""
