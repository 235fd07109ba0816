"""GRPO and its DAPO, SAPO and CISPO recipes: options, builder, trainer, dynamic sampling, the generation copy."""
