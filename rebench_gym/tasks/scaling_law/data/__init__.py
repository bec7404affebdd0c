"""Shipped ground truth of ScalingLaw: the mini sweep (scripts/make_scaling_law_sweep.py)."""
