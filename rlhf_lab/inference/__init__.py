"""Using a trained model: loading any model, adapter or run to generate with (load.py), and batched answers for a
file of prompts or an interactive chat (infer.py)."""
