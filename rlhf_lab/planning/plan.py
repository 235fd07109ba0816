"""`python -m rlhf_lab plan <the overrides of a run> [plan.gpu=h100] [plan.mfu=0.4]`: the run's memory per device by
part, whether it fits an accelerator and the cheapest change that makes it fit, and FLOPs and time per step.
Composed and validated as the run would be; no weights are loaded and torch is not imported."""

from __future__ import annotations

import dataclasses

from rlhf_lab.errors import ConfigError, ModelError
from rlhf_lab.planning.accelerators import ACCELERATORS
from rlhf_lab.planning.memory import Setup, breakdown, flops_per_step
from rlhf_lab.planning.shape import Shape, read_config

GIB = 1024**3
USAGE = """python -m rlhf_lab plan <overrides of a run> [plan.gpu=NAME] [plan.mfu=0.4]

The memory each device needs (weights, gradients, optimizer state, activations, reference/reward/value/teacher
models, generation copy and KV cache), whether it fits the named accelerator, and the cheapest change that makes it
fit; FLOPs per optimizer step and a step time at plan.mfu of the accelerator's peak.
Accelerators: """ + ", ".join(f"{k} ({v[0]:g} GiB)" for k, v in ACCELERATORS.items())


def model_shape(name_or_path: str, key: str, revision: str | None = None) -> Shape:
    """The shape of the model a run names: its config.json (at its revision) where it can be read, else the preset
    table."""
    from rlhf_lab.models.source import resolve_source
    from rlhf_lab.paths import cache_dir
    from rlhf_lab.planning.known_shapes import KNOWN_SHAPES

    source = resolve_source(name_or_path, key=key)
    config, known = None, source.location
    if source.kind in ("local", "hub"):
        config = read_config(source.location, revision)
    elif source.kind == "gguf":
        from pathlib import Path

        from rlhf_lab.models.embedded import converted_dir

        config = read_config(str(converted_dir(Path(source.location))))
        known = Path(source.location).stem.split(".")[0]
    elif source.kind == "builtin":
        folder = {"tiny-llama": "tiny-llama-v1", "tiny-vl": "tiny-qwen2-vl-v1"}[source.location]
        config = read_config(str(cache_dir() / "models" / folder))
    config = config or KNOWN_SHAPES.get(known)
    if config is None:
        raise ModelError(
            f"{key}={name_or_path}: its config.json is not at hand (download it, e.g. hf download {name_or_path} "
            "config.json) and rlhf_lab has no copy of its shape"
        )
    return Shape.from_config(config, f"{key}={name_or_path}")


def planned_bf16(setting, gpu: str | None) -> bool:
    """train.bf16 as the planned machine resolves it: auto is bf16 on every listed accelerator, and on this machine's
    CPU where it computes bf16 fast."""
    if setting is True or setting is False:
        return setting
    from rlhf_lab.models.precision import cpu_has_fast_bf16

    return True if gpu else cpu_has_fast_bf16()


def setup_of(run, gpu: str | None = None, cpu: bool = False) -> Setup:
    """The planned setup of a run, on the named accelerator (or, with cpu=True, on this machine's CPU)."""
    bf16 = planned_bf16(run.train.bf16, gpu)
    facts = run.algorithm.plan_facts(run.tuner.name, run.distributed.backend, cpu_bf16=cpu and bf16)
    # Each extra model at its own revision (algorithm.<field>_revision), found by its path.
    revisions = {path: run.algorithm.model_pins(key)[0] for key, path in run.algorithm.model_paths().items()}
    others = {
        role: model_shape(path, f"algorithm.{role}", revisions.get(path))
        for role, path in {**facts.frozen, **facts.trained}.items()
        if path is not None
    }
    d = run.distributed
    lora = run.tuner.name == "lora"
    return Setup(
        shape=model_shape(run.model.name_or_path, "model.name_or_path", run.model.revision),
        lora_rank=run.tuner.r if lora else None,
        lora_targets=run.tuner.target_modules if lora else "all-linear",
        bf16=bf16,
        micro_batch=run.train.per_device_train_batch_size,
        max_length=run.train.max_length,
        gradient_checkpointing=run.train.gradient_checkpointing,
        engine=d.backend,
        world=d.nproc_per_node * d.nnodes,
        zero_stage=getattr(d, "zero_stage", 0),
        offload_optimizer=getattr(d, "offload_optimizer", "none") != "none" or getattr(d, "cpu_offload", False),
        offload_param=getattr(d, "offload_param", "none") != "none" or getattr(d, "cpu_offload", False),
        facts=facts,
        other_shapes=others,
        vocab_logits=run.spec.model_head == "causal_lm",
    )


def fixes(s: Setup) -> list[tuple[str, Setup]]:
    """Changes that lower memory, cheapest first (each on top of the ones before)."""
    out: list[tuple[str, Setup]] = []
    current = s
    steps = []
    if not s.gradient_checkpointing:
        steps.append(("train.gradient_checkpointing=true", dict(gradient_checkpointing=True)))
    if s.lora_rank is None:
        steps.append(("tuner=lora", dict(lora_rank=8, lora_targets="all-linear")))
    if s.world > 1 and not (s.engine == "deepspeed" and s.zero_stage == 3) and s.engine != "fsdp":
        steps.append(("distributed=zero3", dict(engine="deepspeed", zero_stage=3)))
    if not s.offload_optimizer and (s.engine == "deepspeed" or s.world > 1):
        steps.append(
            (
                "distributed=zero3_offload",
                dict(engine="deepspeed", zero_stage=3, offload_optimizer=True, offload_param=True),
            )
        )
    batch, length = s.micro_batch, s.max_length
    while batch > 1:
        batch //= 2
        steps.append(
            (
                f"train.per_device_train_batch_size={batch} (raise gradient_accumulation_steps to keep the batch)",
                dict(micro_batch=batch),
            )
        )
    while length > 256:
        length //= 2
        steps.append((f"train.max_length={length}", dict(max_length=length)))
    for label, change in steps:
        current = dataclasses.replace(current, **change)
        out.append((label, current))
    return out


def plan_text(run, gpu: str | None, mfu: float) -> str:
    s = setup_of(run, gpu)
    parts = breakdown(s)
    lines = [
        f"plan of {run.algorithm.name} on {run.model.name_or_path} ({s.shape.params / 1e9:.3g}B parameters, "
        f"{'LoRA r=' + str(s.lora_rank) if s.lora_rank else 'full tuning'}, {'bf16' if s.bf16 else 'fp32'}, "
        f"{s.engine} x{s.world}, micro-batch {s.micro_batch} x {s.max_length} tokens"
        f"{', gradient checkpointing' if s.gradient_checkpointing else ''})",
        "",
        "per device:",
    ]
    for name, value in parts.items():
        if name != "total":
            lines.append(f"  {name:<18} {value / GIB:9.2f} GiB")
    lines.append(f"  {'total':<18} {parts['total'] / GIB:9.2f} GiB")
    other = dataclasses.replace(s, gradient_checkpointing=not s.gradient_checkpointing)
    lines.append(
        f"  (activations {'without' if s.gradient_checkpointing else 'with'} gradient checkpointing: "
        f"{breakdown(other)['activations'] / GIB:.2f} GiB)"
    )
    flops = flops_per_step(s, run.train.gradient_accumulation_steps)
    lines.append("")
    lines.append(f"FLOPs per optimizer step per device: {flops:.3g}")
    if gpu is not None:
        memory, peak = ACCELERATORS[gpu]
        total = parts["total"] / GIB
        verdict = "fits" if total <= memory else "does not fit"
        lines.append(f"{gpu}: {memory:g} GiB, {verdict} ({total:.1f} GiB)")
        lines.append(f"step time at {mfu:.0%} of its {peak:g} TFLOP/s: {flops / (peak * 1e12 * mfu):.2f} s")
        if total > memory:
            for label, changed in fixes(s):
                new = breakdown(changed)["total"] / GIB
                if new <= memory:
                    lines.append(f"cheapest change that fits: {label} -> {new:.1f} GiB")
                    break
            else:
                lines.append("no single-device change fits: add processes (distributed=zero3 with more GPUs)")
    return "\n".join(lines)


def plan_command(args: list[str]) -> str:
    if "--help" in args or "-h" in args:
        return USAGE
    gpu, mfu, overrides = None, 0.4, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if key == "plan.gpu" and sep:
            if value not in ACCELERATORS:
                raise ConfigError(
                    "plan.gpu", f"unknown accelerator {value!r}; choose one of: {', '.join(ACCELERATORS)}"
                )
            gpu = value
        elif key == "plan.mfu" and sep:
            try:
                mfu = float(value)
            except ValueError:
                raise ConfigError("plan.mfu", f"must be a number in (0, 1], got {value!r}") from None
            if not 0 < mfu <= 1:
                raise ConfigError("plan.mfu", f"must be in (0, 1], got {mfu}")
        elif key.startswith("plan."):
            raise ConfigError(key, "not a plan setting; plan.gpu and plan.mfu are")
        else:
            overrides.append(arg)
    from rlhf_lab.cli.preflight import compose
    from rlhf_lab.config.run import build_run

    cfg, run_dir, choices = compose(overrides)
    run = build_run(cfg, run_dir, choices=choices, overrides=tuple(overrides), check_dir=False)
    return plan_text(run, gpu, mfu)
