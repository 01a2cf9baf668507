"""Metrics that need more than one batch: disentanglement (MIG), ..."""
