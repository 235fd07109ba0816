"""Sampled answers of the online algorithms (GRPO, PPO) at each logging step, with algorithm.log_completions: one
parquet file per logged step in <run>/checkpoints/completions/ (TRL's GRPO trainer writes them there; PPO here writes
the same layout), and each new file sent to wandb as a table."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

FOLDER = "completions"


def completions_file(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / FOLDER / f"completions_{step:05d}.parquet"


def write_completions(output_dir: str | Path, step: int, table: dict[str, list]) -> Path:
    """One logged step's rows (step, prompt, completion, rewards...) as parquet."""
    import pandas as pd

    path = completions_file(output_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({k: [str(v) if isinstance(v, (list, dict)) else v for v in vs] for k, vs in table.items()})
    frame.to_parquet(path)
    return path


class CompletionsToWandb(TrainerCallback):
    """After each log: the completions file of that step, if one was written, as a wandb table."""

    def __init__(self, wandb_run):
        self.wandb_run = wandb_run

    def on_log(self, args, state, control, logs=None, **kwargs):
        path = completions_file(args.output_dir, state.global_step)
        if not state.is_world_process_zero or not path.exists():
            return
        import pandas as pd
        import wandb

        frame = pd.read_parquet(path).astype(str)
        self.wandb_run.log({"completions": wandb.Table(dataframe=frame)}, step=state.global_step)
