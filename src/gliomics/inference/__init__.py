"""Inference: whole-volume or sliding-window forward passes, the Predictor and its outputs."""
