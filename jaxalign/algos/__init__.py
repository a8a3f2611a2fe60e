"""Algorithms as small wiring modules: each builds an `Algorithm` for the shared runner."""
