"""Optimize a Kernel: the masked prefix-sum task."""
