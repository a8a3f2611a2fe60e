"""Grain input pipelines: preference pairs for DPO."""
