"""python -m rlhf_lab export run=RUN_DIR: the run's model as one plain transformers checkpoint in safetensors.

- LoRA runs: the base model is loaded as the run loaded it (its model.* settings, in fp32 so the merge is exact), the
  adapter applied and merged in, and the result saved in the requested dtype with the run's tokenizer or processor
  (chat template included) and the base's generation config. A reward model keeps its sequence-classification
  head, a vision-language model its image-text class.
- Full-tuning runs (and reward models, which runs save merged): the saved model, copied as is (or cast to dtype).
- PPO: the policy as above, and its value model in value_model/ beside it.

The export is written under a temporary name and renamed when complete, so an interrupted export never looks done.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from rlhf_lab.config.model import ModelConfig
from rlhf_lab.config.verbs import ExportConfig
from rlhf_lab.errors import ConfigError
from rlhf_lab.paths import publish_dir
from rlhf_lab.runtime import fingerprint

VALUE_MODEL = "value_model"


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """What export needs to know about a finished run."""

    run_dir: Path
    saved: Path  # adapter/ or model/
    settings: dict
    head: str  # causal_lm or reward

    @property
    def is_adapter(self) -> bool:
        return self.saved.name == "adapter"

    @property
    def model(self) -> ModelConfig:
        prefix = "model."
        return ModelConfig(**{k[len(prefix) :]: v for k, v in self.settings.items() if k.startswith(prefix)})


def read_run(path: str) -> SavedRun:
    """The run at path, or a one-line error saying what is missing and what to do."""
    from rlhf_lab.algorithms.registry import get_spec

    run_dir = Path(path).expanduser()
    if not run_dir.is_dir():
        raise ConfigError("run", f"{run_dir} is not a directory; give a run directory (outputs/runs/...)")
    saved = next((run_dir / n for n in ("adapter", "model") if (run_dir / n / "config.json").exists()), None)
    if saved is None:
        saved = next((run_dir / n for n in ("adapter", "model") if (run_dir / n).is_dir()), None)
    if saved is None:
        raise ConfigError(
            "run",
            f"{run_dir} holds no saved model (adapter/ or model/); a run saves it when it completes: finish the "
            "run (run its command again to resume) or give another run directory",
        )
    settings = fingerprint.read(run_dir)
    if settings is None:
        raise ConfigError("run", f"{run_dir} has no {fingerprint.FILE}; it was not written by rlhf_lab")
    return SavedRun(run_dir, saved, settings, get_spec(settings["algorithm.name"]).model_head)


def export(cfg: ExportConfig) -> Path:
    run = read_run(cfg.run)
    out = Path(cfg.out).expanduser() if cfg.out else run.run_dir / "export"
    if out.exists() and not cfg.overwrite:
        raise ConfigError("out", f"{out} already exists; choose another out=... or set overwrite=true to replace it")
    if out.resolve() in (run.saved.resolve(), run.run_dir.resolve()) or run.saved.resolve() in out.resolve().parents:
        raise ConfigError("out", f"{out} would overwrite the run's own files; choose a directory outside {run.saved}")
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if run.is_adapter:
            _merge(run, run.saved, tmp, cfg.dtype, head=run.head, base=None)
            value = run.saved / VALUE_MODEL
            if value.is_dir():  # PPO's critic: a sequence classifier on the policy's tokens
                # It started from value_model, else the reward model, else the policy's checkpoint (base None).
                critic = next((k for k in ("value_model", "reward_model") if run.settings[f"algorithm.{k}"]), None)
                _merge(run, value, tmp / VALUE_MODEL, cfg.dtype, head="reward", base=critic)
        else:
            _copy(run, run.saved, tmp, cfg.dtype)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_dir(tmp, out)
    return out


def _base_model(run: SavedRun, base: str | None) -> ModelConfig:
    """The settings the adapter's base model was loaded with: the policy's, or (base: the algorithm's field naming
    it, e.g. value_model) that model's own revision and trust_remote_code, which runs recorded before those settings
    existed lack (their extra models loaded with none)."""
    if base is None:
        return run.model
    return dataclasses.replace(
        run.model,
        name_or_path=run.settings[f"algorithm.{base}"],
        revision=run.settings.get(f"algorithm.{base}_revision"),
        trust_remote_code=bool(run.settings.get(f"algorithm.{base}_trust_remote_code")),
        num_hidden_layers=None,
    )


def _merge(run: SavedRun, adapter: Path, dest: Path, dtype: str, head: str, base: str | None) -> None:
    from peft import PeftModel

    from rlhf_lab.models.load import POLICY, load_causal_lm

    # fp32 whatever the run trained in: the merge adds the adapter's delta to the base weights exactly.
    model_cfg = dataclasses.replace(_base_model(run, base), torch_dtype="float32")
    model = load_causal_lm(model_cfg, bf16=False, head=head, key=f"algorithm.{base}" if base else POLICY)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    processing = saved_processing(adapter)
    if head == "reward":  # the score is read at the last token that is not padding
        merged.config.pad_token_id = _tokenizer(processing).pad_token_id
    merged.to(_dtype(dtype, _base_model(run, base))).save_pretrained(str(dest))
    processing.save_pretrained(str(dest))


def _copy(run: SavedRun, saved: Path, dest: Path, dtype: str) -> None:
    if dtype == "auto":
        shutil.copytree(saved, dest)
        return
    from rlhf_lab.models.load import load_causal_lm

    model_cfg = dataclasses.replace(run.model, torch_dtype="float32")
    model = load_causal_lm(model_cfg, bf16=False, name_or_path=str(saved), head=run.head)
    model.to(_dtype(dtype, run.model)).save_pretrained(str(dest))
    saved_processing(saved).save_pretrained(str(dest))


def saved_processing(saved: Path):
    """The tokenizer or processor the run saved beside its weights (chat template included)."""
    from transformers import AutoProcessor, AutoTokenizer

    if (saved / "preprocessor_config.json").exists() or (saved / "processor_config.json").exists():
        return AutoProcessor.from_pretrained(str(saved))
    return AutoTokenizer.from_pretrained(str(saved))


def _tokenizer(processing):
    return getattr(processing, "tokenizer", processing)


def _dtype(name: str, model: ModelConfig):
    """auto: the dtype the base checkpoint was stored in (a bf16 hub model exports in bf16), else fp32."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    from transformers import AutoConfig

    from rlhf_lab.models.load import local_checkpoint
    from rlhf_lab.models.source import resolve_source

    path = local_checkpoint(resolve_source(model.name_or_path))
    config = AutoConfig.from_pretrained(path, trust_remote_code=model.trust_remote_code, revision=model.revision)
    stored = getattr(config, "dtype", None) or getattr(getattr(config, "text_config", None), "dtype", None)
    if isinstance(stored, str):
        stored = getattr(torch, stored, None)
    return stored if isinstance(stored, torch.dtype) else torch.float32
