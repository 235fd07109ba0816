"""A model to generate with, from whatever the user names: a run directory (its export, else its adapter merged
into the base in memory, else its saved model), an adapter directory, a model preset, a local checkpoint or a hub
id. Loaded as training loads it (the same sources, vision-language models with their processor)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rlhf_lab.config.model import ModelConfig
from rlhf_lab.errors import ConfigError
from rlhf_lab.runtime import fingerprint


@dataclasses.dataclass
class Loaded:
    model: object
    processing: object  # tokenizer, or a vision-language model's processor
    vision: bool
    where: str  # what was loaded, in words

    @property
    def tokenizer(self):
        return getattr(self.processing, "tokenizer", self.processing)


def load_for_generation(name: str, key: str = "model") -> Loaded:
    from rlhf_lab.config.presets import model_preset_path

    path = Path(name).expanduser()
    if path.is_dir() and (path / fingerprint.FILE).exists():
        return _from_run(path, key)
    if path.is_dir() and (path / "adapter_config.json").exists():
        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        return _load(ModelConfig(name_or_path=base), adapter=path, where=f"adapter {path} on {base}")
    check_not_missing(name, key)
    source = model_preset_path(name) or name
    return _load(ModelConfig(name_or_path=source), adapter=None, where=source)


def check_not_missing(name: str, key: str = "model") -> None:
    """A name that looks like a local path (not a hub id) but names nothing: one line before anything loads."""
    path = Path(name).expanduser()
    if not path.exists() and "/" in name and (name.startswith((".", "/", "~")) or path.parent.exists()):
        raise ConfigError(key, f"{name} does not exist; give a run directory, a checkpoint, a preset or a hub id")


def _from_run(run_dir: Path, key: str) -> Loaded:
    from rlhf_lab.export.merge import read_run

    try:
        run = read_run(str(run_dir))
    except ConfigError as e:
        raise ConfigError(key, e.message) from None
    if run.head != "causal_lm":
        raise ConfigError(key, f"{run_dir} is a reward-model run: it scores answers and does not write them")
    exported = run_dir / "export"
    if (exported / "config.json").exists():
        return _load(ModelConfig(name_or_path=str(exported)), adapter=None, where=f"{exported} (the run's export)")
    if run.is_adapter:
        return _load(run.model, adapter=run.saved, where=f"{run.saved} on {run.model.name_or_path}")
    return _load(ModelConfig(name_or_path=str(run.saved)), adapter=None, where=str(run.saved))


def _load(cfg: ModelConfig, adapter: Path | None, where: str) -> Loaded:
    import torch

    from rlhf_lab.export.merge import saved_processing
    from rlhf_lab.models.load import is_vision_model, load_causal_lm, load_processor, load_tokenizer

    on_gpu = torch.cuda.is_available()
    model = load_causal_lm(cfg, bf16=on_gpu)
    processing = None
    if adapter is not None:
        from peft import PeftModel

        # Merged in memory: generation then runs at the plain model's speed.
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        processing = saved_processing(adapter)
    vision = is_vision_model(cfg)
    if processing is None:
        processing = load_processor(cfg) if vision else load_tokenizer(cfg)
    tokenizer = getattr(processing, "tokenizer", processing)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation continues every row from its own end
    if on_gpu:
        model = model.to("cuda")
    return Loaded(model.eval(), processing, vision, where)
