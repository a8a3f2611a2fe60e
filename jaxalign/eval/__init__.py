"""Evaluation of trained runs: held-out generations and their scores."""
