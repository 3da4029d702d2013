"""``python -m validator``: infer or check a data schema, measure drift against a reference and
report every anomaly (JSON and HTML)."""
