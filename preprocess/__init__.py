"""Data validation (``python -m preprocess.validate``) and preprocessing (``python -m preprocess``):
deterministic splits and a JSON transform fitted on train only, applied identically when serving."""
