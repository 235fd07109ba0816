"""Reward functions for GRPO: built-ins, custom loading, and the adapter the trainer calls."""
