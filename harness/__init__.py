"""Data, losses and the training loop behind trial.py: an NNI search harness for image classification."""
