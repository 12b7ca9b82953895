"""Evaluation: segmentation metrics, classification statistics and tables."""
