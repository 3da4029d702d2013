"""What every step shares and no step owns: storage (URIs, atomic writes, storage errors), tables,
the preprocess output layout, the MLflow location and retries, the step runner, shared metrics and
the evaluation recorded on a run."""
