"""Profile optimizer steps of an rlhf_lab run: where the time goes, by operator and by phase.

    python scripts/profile_step.py algorithm=dpo dataset=arith_pairs tuner=lora train.max_length=128
    python scripts/profile_step.py --steps 3 --warmup 1 algorithm=grpo dataset=arith_math tuner=lora

The trainer is built exactly as `python -m rlhf_lab` builds it (same overrides), then trained for
warmup + steps optimizer steps; the last `steps` are recorded with torch.profiler. Prints the operators with
the most self CPU time and the share of matrix products, and writes a Chrome trace next to the run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from rlhf_lab.config import register_schemas

    register_schemas()
    with initialize_config_dir(CONF_DIR, version_base="1.3", job_name="profile"):
        return hydra_compose("config", overrides=overrides)


def timed(method, total: list, recording: list):
    """Wrap a bound method so that its wall time (while recording) adds to total = [seconds, calls]."""

    def wrapper(*a, **k):
        started = time.perf_counter()
        try:
            return method(*a, **k)
        finally:
            if recording[0]:
                total[0] += time.perf_counter() - started
                total[1] += 1

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="recorded optimizer steps")
    parser.add_argument("--warmup", type=int, default=1, help="optimizer steps run before recording")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--trace", default=None, help="write a Chrome trace here")
    parser.add_argument(
        "--time",
        default="",
        help="comma-separated trainer methods to time, e.g. "
        "_generate_single_turn,_get_per_token_logps_and_entropies,training_step",
    )
    parser.add_argument("--no-ops", action="store_true", help="phase times only, without torch.profiler")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    import torch
    from transformers import TrainerCallback, set_seed

    from rlhf_lab.config.run import build_run
    from rlhf_lab.data.load import load_splits
    from rlhf_lab.models.precision import resolve_bf16
    from rlhf_lab.training.pipeline import build_trainer, load_inputs

    total = args.warmup + args.steps
    overrides = [*args.overrides, f"train.max_steps={total}", "train.eval=false", "logger=none"]
    tmp = Path(tempfile.mkdtemp(prefix="rlhf_lab-profile-"))
    run = build_run(compose(overrides), tmp)
    set_seed(run.train.seed)
    splits = load_splits(run.dataset, run.spec.data_format, run.train.seed, images=run.spec.images)
    bf16 = resolve_bf16(run.train.bf16)
    trainer = build_trainer(run, load_inputs(run, splits, bf16))

    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True)
    times: list[float] = []
    phases = {name: [0.0, 0] for name in filter(None, args.time.split(","))}
    recording = [False]
    for name in phases:
        setattr(trainer, name, timed(getattr(trainer, name), phases[name], recording))

    class Recorder(TrainerCallback):
        def on_step_end(self, _args, state, control, **kwargs):
            times.append(time.perf_counter())
            if state.global_step == args.warmup:
                recording[0] = True
                if not args.no_ops:
                    prof.start()

    trainer.add_callback(Recorder())
    trainer.train()
    seconds = (times[-1] - times[args.warmup - 1]) / args.steps if args.warmup else None
    print(f"seconds per recorded step: {seconds:.3f}" if seconds else "")
    for name, (spent, calls) in phases.items():
        print(f"{name}: {spent / args.steps:.3f} s per step ({calls} calls)")
    if args.no_ops:
        return
    prof.stop()
    events = prof.key_averages()
    self_total = sum(e.self_cpu_time_total for e in events)
    print(prof.key_averages(group_by_input_shape=False).table(sort_by="self_cpu_time_total", row_limit=args.top))
    matmul = sum(
        e.self_cpu_time_total
        for e in events
        if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu")
    )
    print(f"matrix products and attention: {100 * matmul / self_total:.1f}% of self CPU time")
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"trace written to {args.trace}")


if __name__ == "__main__":
    main()
