"""Model analysis: why a model answers as it does (explain) and whether new data look like the training data (reference, drift)."""
