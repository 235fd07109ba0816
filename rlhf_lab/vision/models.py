"""Vision-language models: recognising them, their processors, a reward head for them, and which of their parts
train (tuner.freeze_vit, tuner.freeze_aligner)."""

from __future__ import annotations

from functools import cache

from rlhf_lab.config.model import ModelConfig
from rlhf_lab.config.tuner import TunerConfig
from rlhf_lab.errors import ModelError

# Module names of vision towers and of the projectors ("aligners") that map their features into the language
# model, across the families transformers ships (Qwen-VL: visual / merger, deepstack mergers in Qwen3-VL;
# LLaVA-style: vision_tower / multi_modal_projector; Idefics3 and SmolVLM: vision_model / connector).
VISION_TOWERS = ("visual", "vision_tower", "vision_model", "vision_encoder")
ALIGNERS = ("merger", "deepstack_merger_list", "multi_modal_projector", "connector", "mm_projector")


@cache
def is_vision_language(path: str, trust_remote_code: bool = False, revision: str | None = None) -> bool:
    """Whether the checkpoint is a vision-language model (its config has a vision part)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    return getattr(config, "vision_config", None) is not None


def require_torchvision(where: str) -> None:
    # transformers' Qwen-VL processors validate their video slot with torchvision even for image-only data.
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise ModelError(
            f"{where} is a vision-language model and its processor needs torchvision; "
            "install it with: pip install 'rlhf_lab[vision]' (scripts/setup.sh does)"
        ) from None


def load_processor(path: str, cfg: ModelConfig):
    """The model's processor, its image bounds set from model.min_pixels / model.max_pixels."""
    from transformers import AutoProcessor

    require_torchvision(cfg.name_or_path)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    image_processor = processor.image_processor
    for name in ("min_pixels", "max_pixels"):
        value = getattr(cfg, name)
        if value is not None and hasattr(image_processor, name):
            setattr(image_processor, name, value)
    size = getattr(image_processor, "size", None)
    if isinstance(size, dict) and "longest_edge" in size:  # Qwen-VL keeps the pixel bounds in `size` as well
        if cfg.min_pixels is not None:
            size["shortest_edge"] = cfg.min_pixels
        if cfg.max_pixels is not None:
            size["longest_edge"] = cfg.max_pixels
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


@cache
def reward_model_class(config_class):
    """A one-score sequence classifier on a vision-language model's backbone (transformers has none for these
    families).

    It pools the hidden state of the last real token, like transformers' text reward models, and keeps the backbone
    under the same `model.` prefix as the image-text-to-text checkpoint, so that those weights load into it."""
    from transformers import AutoModelForImageTextToText
    from transformers.modeling_layers import GenericForSequenceClassification
    from transformers.modeling_utils import PreTrainedModel

    generation_class = AutoModelForImageTextToText._model_mapping[config_class]
    base = next(c for c in generation_class.__mro__[1:] if issubclass(c, PreTrainedModel) and c is not PreTrainedModel)
    name = generation_class.__name__.replace("ForConditionalGeneration", "") + "ForSequenceClassification"
    return type(name, (GenericForSequenceClassification, base), {"__module__": __name__})


def _part(name: str) -> str | None:
    """'aligner', 'vit' or None (the language model) for a module or parameter name."""
    parts = name.split(".")
    if any(p in ALIGNERS for p in parts):
        return "aligner"
    if any(p in VISION_TOWERS for p in parts):
        return "vit"
    return None


def frozen_parts(tuner: TunerConfig) -> set[str]:
    return {part for part, frozen in (("vit", tuner.freeze_vit), ("aligner", tuner.freeze_aligner)) if frozen}


def freeze_vision(model, tuner: TunerConfig) -> list[str]:
    """Stop gradients into the frozen parts; returns the names of their linear layers (where LoRA must not go)."""
    import torch

    frozen = frozen_parts(tuner)
    for name, param in model.named_parameters():
        if _part(name) in frozen:
            param.requires_grad_(False)
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and _part(n) in frozen]
