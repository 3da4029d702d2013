"""Models-from-code entry that MLflow executes when loading a logged model (no pickle involved).
The model itself lives in ``trainer.serving``."""

from mlflow.models import set_model

from trainer.serving import TabularClassifier

set_model(TabularClassifier())
