"""Training: the trainer (single process and DDP), checkpoints, validation and the metrics log."""
