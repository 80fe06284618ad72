"""Downstream science metrics on the simulated survey's ground truth."""
