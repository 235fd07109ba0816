"""What a run leaves, made into models other tools load: export (LoRA merged into its base)."""
