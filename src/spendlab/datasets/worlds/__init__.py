"""Synthetic worlds with known effects, each with its oracle."""
