"""GKD (generalized knowledge distillation): options, builder and trainer."""
