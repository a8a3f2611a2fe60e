"""Evaluation of trained runs: evaluators by name (registry.py), held-out preferences and
generations with their scores."""
