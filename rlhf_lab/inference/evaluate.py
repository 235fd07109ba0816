"""python -m rlhf_lab eval model=... [training overrides]: the held-out evaluation training runs before and after,
on any model, adapter or run, by the same code path (data, model loading, trainer, evaluator) as a run.

- model=RUN_DIR: the run's own settings and held-out rows; the base model (before) and the trained one (after), so
  the figures equal the run's eval_before and eval_after. Overrides change the data (dataset=..., a bigger held-out
  set) or the batch, not the training settings.
- model=PRESET, CHECKPOINT, HUB_ID or ADAPTER_DIR with the overrides of a run (algorithm=grpo dataset=gsm8k ...):
  that model scored once, as a run would score it before training. The held-out rewards of GRPO (accuracy against
  the `solution` column with the run's reward functions, greedy answers: pass@1) make this a generation benchmark.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from rlhf_lab.errors import ConfigError
from rlhf_lab.runtime import fingerprint

USAGE = """python -m rlhf_lab eval model=RUN_DIR|PRESET|CHECKPOINT|ADAPTER_DIR [out=FILE.json] [overrides of a run ...]

  model=RUN_DIR          the run's held-out evaluation, before (its base) and after (trained): its summary's figures
  model=smollm2_135m algorithm=dpo dataset=arith_pairs   a model scored as a run scores it before training
  model=CKPT algorithm=grpo dataset=gsm8k                greedy answers scored by the rewards (accuracy: pass@1)
  pass_k=K               also sample K answers per held-out prompt and check them against its solution: pass@K
                         (temperature=1.0 and max_new_tokens=256 by default; eval's own keys)
  out=FILE.json          where the figures go (default: RUN_DIR/eval.json, else outputs/eval/<model>-<time>.json)"""


# eval's own keys (the rest are a run's overrides): pass@k sampling of the held-out prompts.
SAMPLING_KEYS = ("pass_k", "temperature", "max_new_tokens")


def evaluate_command(args: list[str]) -> str:
    if "--help" in args or "-h" in args:
        return USAGE
    model, out, overrides = _split(args)
    sampling, overrides = _sampling(overrides)
    path = Path(model).expanduser()
    if path.is_dir() and (path / fingerprint.FILE).exists():
        result, default_out = _evaluate_run(path, overrides, sampling), path / "eval.json"
    else:
        result = _evaluate_model(model, path, overrides, sampling)
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        default_out = Path("outputs") / "eval" / f"{Path(model.rstrip('/')).name}-{stamp}.json"
    out = Path(out).expanduser() if out else default_out
    from rlhf_lab.paths import write_json_atomic

    write_json_atomic(out, result)
    _print_table(result)
    return f"written to {out}"


def _split(args: list[str]) -> tuple[str, str | None, list[str]]:
    model, out, rest = None, None, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if key == "model" and sep:
            model = value
        elif key == "out" and sep:
            out = value
        else:
            rest.append(arg)
    if not model:
        raise ConfigError(
            "model", "is required: a run directory, a model preset, a checkpoint or an adapter (eval model=...)"
        )
    return model, out, rest


def _sampling(overrides: list[str]):
    """(k and the Sampling settings, or None; the other overrides)."""
    from rlhf_lab.config.verbs import Sampling

    own = {}
    rest = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key in SAMPLING_KEYS:
            own[key] = value
        else:
            rest.append(o)
    if "pass_k" not in own:
        if own:
            raise ConfigError(next(iter(own)), "samples only with pass_k=K (k answers per held-out prompt)")
        return None, rest
    try:
        k = int(own.pop("pass_k"))
        values = {k_: (int(v) if k_ == "max_new_tokens" else float(v)) for k_, v in own.items()}
    except ValueError as e:
        raise ConfigError("pass_k", f"needs numbers: {e}") from None
    if k < 1:
        raise ConfigError("pass_k", f"must be >= 1, got {k}")
    return (k, Sampling(**values)), rest


def _evaluate_run(run_dir: Path, overrides: list[str], sampling) -> dict:
    from omegaconf import OmegaConf

    from rlhf_lab.config.store import typed_config
    from rlhf_lab.export.merge import read_run

    saved = read_run(str(run_dir))
    training = [o for o in overrides if o.split("=")[0].split(".")[0] not in ("dataset", "train")]
    if training:
        raise ConfigError(
            training[0].split("=")[0],
            "cannot change a trained run's settings; eval model=RUN_DIR takes dataset.* and train.* overrides only",
        )
    resolved = _unflatten(saved.settings)
    resolved["logger"] = {"backend": "none"}
    resolved["distributed"] = {"backend": "single"}  # one process scores the held-out rows
    cfg = typed_config(resolved)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o for o in overrides if "=" in o]))
    return _score(cfg, {"algorithm": saved.settings["algorithm.name"]}, saved, f"{run_dir}", sampling)


def _evaluate_model(model: str, path: Path, overrides: list[str], sampling) -> dict:
    from rlhf_lab.cli.preflight import compose
    from rlhf_lab.config.presets import model_preset_path
    from rlhf_lab.inference.load import check_not_missing

    adapter = None
    if model_preset_path(model):
        chosen = [f"model={model}"]
    else:
        if (path / "adapter_config.json").exists():
            adapter = path
            model = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        else:
            check_not_missing(model)
        chosen = ["model=custom", f"model.name_or_path={model}"]
    cfg, _, choices = compose([*chosen, *overrides, "logger=none", "distributed=single"])
    return _score(cfg, choices, adapter, model, sampling)


def _score(cfg, choices: dict, trained, what: str, sampling=None) -> dict:
    """Build the run (never trained: its directory is a temporary one), its trainer and evaluator; score the model it
    loads, then (a run or an adapter) the trained weights."""
    from rlhf_lab.algorithms.registry import get_spec
    from rlhf_lab.config.run import build_run
    from rlhf_lab.data.load import load_splits
    from rlhf_lab.models.precision import resolve_bf16
    from rlhf_lab.training.pipeline import build_trainer, load_inputs

    with tempfile.TemporaryDirectory(prefix="rlhf_lab-eval-") as tmp:
        run = build_run(cfg, Path(tmp), choices=choices, check_dir=False)
        spec = get_spec(run.algorithm.name)
        evaluate = spec.load_evaluation()
        if evaluate is None:
            raise ConfigError("algorithm", f"{spec.name} has no held-out evaluation")
        splits = load_splits(run.dataset, spec.data_format, run.train.seed, images=spec.images)
        run.algorithm.check_data(splits.train + splits.val)
        if sampling is not None and (not len(splits.val) or "solution" not in splits.val[0]):
            raise ConfigError(
                "pass_k", "needs held-out rows with a solution column (e.g. dataset=gsm8k, dataset=arith_math)"
            )
        if not len(splits.val):
            raise ConfigError(
                "dataset.val_path", "the data has no held-out rows to score; give dataset.val_path=... (or split_ratio)"
            )
        from transformers import set_seed

        set_seed(run.train.seed)
        bf16 = resolve_bf16(run.train.bf16)
        inputs = load_inputs(run, splits, bf16)
        trainer = build_trainer(run, inputs)
        evaluation = evaluate(run, inputs.tokenizer, splits.val, bf16, trainer)
        started = time.time()
        first = evaluation.evaluate(trainer.model)  # the loaded model (a new LoRA adapter starts as a no-op)
        result = {"model": what, "algorithm": spec.name, "val_rows": len(splits.val), "val_source": splits.val_origin}
        if trained is None:
            result["eval"] = first
        else:
            _load_trained(trainer, run, trained)
            result.update(eval_before=first, eval_after=evaluation.evaluate(trainer.model))
        result["eval_seconds"] = round(time.time() - started, 2)
        if sampling is not None:
            started = time.time()
            result["pass_k"] = _pass_k(
                trainer, inputs, splits.val, sampling, run.train.per_device_eval_batch_size, what
            )
            result["pass_k"]["seconds"] = round(time.time() - started, 2)
        return result


def _pass_k(trainer, inputs, rows, sampling, batch_size: int, what: str) -> dict:
    """pass@k of the model evaluated last (a run: its trained weights)."""
    from rlhf_lab.inference.load import Loaded

    _, policy = _policy(trainer)
    tokenizer = inputs.tokenizer
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues each row from its end
    try:
        loaded = Loaded(policy.eval(), inputs.processor or tokenizer, inputs.processor is not None, what)
        k, options = sampling
        return pass_at_k(loaded, rows, k, options, batch_size)
    finally:
        tokenizer.padding_side = side


def _load_trained(trainer, run, trained) -> None:
    """Put the trained weights (a run's adapter or saved model, or an adapter directory) into the trainer's model."""
    from peft import PeftModel, set_peft_model_state_dict
    from safetensors.torch import load_file

    from rlhf_lab.models.load import load_causal_lm

    adapter = trained if isinstance(trained, Path) else (trained.saved if trained.is_adapter else None)
    model, policy = _policy(trainer)
    if adapter is not None:
        if not isinstance(policy, PeftModel):
            raise ConfigError("tuner", "the trained weights are a LoRA adapter; evaluate them with tuner=lora")
        set_peft_model_state_dict(policy, load_file(str(adapter / "adapter_model.safetensors")))
        return
    # A full model (full tuning, or a reward model saved merged): loaded whole in the policy's place.
    loaded = load_causal_lm(run.model, False, name_or_path=str(trained.saved), head=trained.head).to(policy.device)
    if policy is model:
        trainer.model = loaded
        trainer.model_wrapped = loaded
    else:
        model.policy = loaded


def _policy(trainer):
    """(the trainer's unwrapped model, the policy in it): PPO keeps its policy beside its value model."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    return model, getattr(model, "policy", model)


def _unflatten(settings: dict) -> dict:
    nested: dict = {}
    for key, value in settings.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = ["eval_before", "eval_after"] if "eval_after" in result else ["eval"]
    shown = {c: dict(result[c]) for c in columns}
    if "pass_k" in result:  # computed on the last model scored
        shown[columns[-1]].update({k: v for k, v in result["pass_k"].items() if "pass@" in k})
    name = Path(str(result["model"]).rstrip("/")).name
    table = Table(title=f"{name}: {result['algorithm']} held-out evaluation ({result['val_rows']} rows)")
    table.add_column("metric")
    for c in columns:
        table.add_column({"eval_before": "before", "eval_after": "after", "eval": "value"}[c], justify="right")
    for key in dict.fromkeys(k for c in columns for k in shown[c]):
        values = [shown[c].get(key) for c in columns]
        table.add_row(key, *(f"{v:.4f}" if isinstance(v, float) else "-" if v is None else str(v) for v in values))
    Console().print(table)


def pass_at_k(loaded, rows, k: int, sampling, batch_size: int) -> dict:
    """k sampled answers per held-out prompt, each checked against the row's `solution` by the accuracy reward's
    comparison: pass@k (a prompt counts when any of its k answers is right) and the mean accuracy of one sample."""
    import dataclasses

    from rlhf_lab.inference.infer import generate
    from rlhf_lab.rewards.builtin import is_correct

    solved, right, scored = [False] * len(rows), 0, 0
    for round_ in range(k):
        options = dataclasses.replace(sampling, seed=sampling.seed + round_)
        for start in range(0, len(rows), batch_size):
            batch = [rows[i] for i in range(start, min(start + batch_size, len(rows)))]
            answers = generate(loaded, [r["prompt"] for r in batch], batch, options)
            for i, (row, answer) in enumerate(zip(batch, answers), start):
                correct = is_correct(answer, row["solution"])
                if correct is None:  # the solution does not parse: the row is not scored
                    continue
                scored += 1
                right += bool(correct)
                solved[i] = solved[i] or bool(correct)
    prompts = scored // k if k else 0
    return {
        "k": k,
        "prompts": prompts,
        f"pass@{k}": sum(solved) / prompts if prompts else None,
        "pass@1_sampled": right / scored if scored else None,
        "temperature": sampling.temperature,
    }
