"""``python -m preprocess.validate``: infer or check a data schema and report every anomaly."""
