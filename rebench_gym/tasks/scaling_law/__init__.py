"""Scaling Law Experiment: predict the compute-optimal width, run length and loss of a budget."""
