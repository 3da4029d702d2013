"""``python -m preprocess``: deterministic splits and a JSON transform fitted on train only
(``tabular_model.transform``), applied identically when serving."""
