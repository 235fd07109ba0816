"""PPO with a value model, in rlhf_lab's own loop: options, builder, trainer, models and formulas."""
