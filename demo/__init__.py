"""The main job on the embedded default: sample data → validate → preprocess → sweep → evaluate →
deploy, with a summary table."""
