"""Ratings -> preference records: group filters, scale collapse, disagreement policies."""
