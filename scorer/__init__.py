"""Step: score a file of raw rows with a registered model (``python -m scorer``), and serve that
model online from a verified local copy (``python -m scorer.serve``)."""
