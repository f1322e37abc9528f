"""Embedded ML models (issue 3): sentiment classifier and hybrid recommender.

Nothing here loads a model at import time; use :mod:`bot.ml.serving` for the cached,
process-wide instances.
"""
