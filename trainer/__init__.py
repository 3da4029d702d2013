"""``python -m trainer``: a PyTorch MLP with categorical embeddings for tabular classification,
trained on CUDA when present, logged to MLflow as a pyfunc model that takes raw rows."""
