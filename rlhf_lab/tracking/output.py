"""The run's outputs: the saved model (written completely before it gets its final name) and the result table."""

from __future__ import annotations

import shutil
from pathlib import Path

from rlhf_lab.config.run import Run
from rlhf_lab.paths import publish_dir
from rlhf_lab.runtime.ranks import barrier, is_main


def save_final_model(trainer, run: Run) -> Path:
    """Save the adapter (LoRA) or model (full) with its tokenizer, loadable by plain transformers/peft.

    Algorithms whose result other runs load as a model (reward models) save LoRA merged into a full model.
    Every process takes part (ZeRO-3 gathers the sharded weights); the main process writes and publishes."""
    merge = run.spec.merge_adapter and hasattr(trainer.model, "merge_and_unload")
    name = "adapter" if run.tuner.name == "lora" and not merge else "model"
    final = run.run_dir / name
    # One name every process agrees on; a leftover from a killed run is cleared first.
    tmp = run.run_dir / f".{name}.partial"
    if is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier()
    try:
        if merge:
            if is_main():
                import copy

                copy.deepcopy(trainer.model).merge_and_unload().save_pretrained(str(tmp))
        else:
            trainer.save_model(str(tmp))
        if is_main():
            trainer.processing_class.save_pretrained(str(tmp))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    barrier()  # every rank's part (sharded FSDP weights) is written before the folder gets its final name
    if is_main():
        publish_dir(tmp, final)
    barrier()
    return final


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_result(run: Run, result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    before, after = result.get("eval_before"), result.get("eval_after")
    if before and after:
        table = Table(title=f"{run.name}: held-out evaluation ({result['val_rows']} rows)")
        table.add_column("metric")
        table.add_column("before", justify="right")
        table.add_column("after", justify="right")
        for key in before:
            table.add_row(key, _fmt(before[key]), _fmt(after.get(key)))
        console.print(table)
    else:
        console.print(f"{run.name}: no held-out set (set dataset.val_path or dataset.split_ratio to evaluate)")
    console.print(
        f"trained {result['global_steps']} steps in {result['train_seconds']:.1f} s "
        f"({result['seconds_per_step']:.2f} s/step), final loss {_fmt(result['final_train_metrics'].get('loss'))}"
    )
    console.print(f"saved {result['saved_model']}")
    console.print(f"run directory {run.run_dir}")
