"""Models-from-code entry that MLflow executes when loading a logged model (no pickle involved).
The model itself lives in ``tabular_model.serving``."""

from mlflow.models import set_model

from tabular_model.serving import TabularClassifier

set_model(TabularClassifier())
