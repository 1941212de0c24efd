"""Training: recipes, the trainer (one CPU to many GPUs via torchrun), checkpoints, logs."""
