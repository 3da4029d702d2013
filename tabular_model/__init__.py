"""The model: the feature transform (fitted by preprocessing, applied again when serving), the
network and the served MLflow pyfunc with its packaging. It imports nothing else of the project,
so a logged model loads with this package and its declared dependencies only."""
