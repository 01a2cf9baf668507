"""Metrics that need more than one batch: FID/KID and the class histogram of samples (fid.py), disentanglement (MIG, disentanglement.py)."""
