"""Thin typer commands over gliomics' functions."""
