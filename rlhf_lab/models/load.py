"""Load a causal LM (or a vision-language model) and its tokenizer and processor from any model source."""

from __future__ import annotations

from contextlib import contextmanager
from functools import cache
from pathlib import Path

from rlhf_lab.config.model import ModelConfig
from rlhf_lab.errors import ModelError
from rlhf_lab.models.source import ModelSource, resolve_source

POLICY = "model.name_or_path"  # the setting naming the policy; an extra model's is algorithm.<its field>


@cache  # tokenizer and model (and a reference) ask for the same source
def local_checkpoint(source: ModelSource) -> str:
    """A directory or hub id that from_pretrained understands (converting or building when needed)."""
    if source.kind == "gguf":
        from rlhf_lab.models.embedded import ensure_converted

        return str(ensure_converted(Path(source.location)))
    if source.kind == "builtin" and source.location == "tiny-vl":
        from rlhf_lab.models.tiny_vl import ensure_tiny_vl

        return str(ensure_tiny_vl())
    if source.kind == "builtin":
        from rlhf_lab.models.tiny import ensure_tiny_llama

        return str(ensure_tiny_llama())
    return source.location


def is_vision_model(cfg: ModelConfig, name_or_path: str | None = None, key: str = POLICY) -> bool:
    from rlhf_lab.vision.models import is_vision_language

    where = name_or_path or cfg.name_or_path
    path = local_checkpoint(resolve_source(where, key))
    with _explained(where, key):
        return is_vision_language(path, cfg.trust_remote_code, cfg.revision)


def weight_dtype(cfg: ModelConfig, bf16: bool):
    import torch

    if cfg.torch_dtype != "auto":
        return getattr(torch, cfg.torch_dtype)
    # On GPUs bf16 weights halve memory; on CPUs fp32 weights + bf16 autocast train faster and safer.
    return torch.bfloat16 if bf16 and torch.cuda.is_available() else torch.float32


def load_processor(cfg: ModelConfig, key: str = POLICY):
    """A vision-language model's processor (images and text), or None for a text-only model."""
    if not is_vision_model(cfg, key=key):
        return None
    from rlhf_lab.vision.models import load_processor as vision_processor

    with _explained(cfg.name_or_path, key):
        return vision_processor(local_checkpoint(resolve_source(cfg.name_or_path, key)), cfg)


def load_tokenizer(cfg: ModelConfig, key: str = POLICY):
    """key: the setting that names the model (model.name_or_path, algorithm.reward_model, ...), for messages."""
    from transformers import AutoTokenizer

    path = local_checkpoint(resolve_source(cfg.name_or_path, key))
    if is_vision_model(cfg, key=key):  # the processor's own tokenizer, so both agree on the padding token
        return load_processor(cfg, key).tokenizer
    with _explained(cfg.name_or_path, key):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    cfg: ModelConfig, bf16: bool, name_or_path: str | None = None, head: str = "causal_lm", key: str = POLICY
):
    """The model named by cfg (or by name_or_path, e.g. a saved run's weights) in train-ready form. An algorithm's
    extra model comes with a cfg of its own (algorithms/common.py extra_model) and key, the setting naming it.

    head=reward loads it as a sequence classifier with one output (a reward model; the score head is new).
    A vision-language checkpoint loads as an image-text-to-text model (or its reward-model form)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForSequenceClassification

    where = name_or_path or cfg.name_or_path
    path = local_checkpoint(resolve_source(where, key))
    kwargs = dict(dtype=weight_dtype(cfg, bf16), trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.num_hidden_layers is not None and name_or_path is None:
        kwargs["config"] = _truncated_config(path, cfg)
    vision = is_vision_model(cfg, where, key)
    auto_class = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    if head == "reward":
        auto_class, kwargs["num_labels"] = AutoModelForSequenceClassification, 1
        if vision:
            from transformers import AutoConfig

            from rlhf_lab.vision.models import reward_model_class

            with _explained(where, key):
                config = AutoConfig.from_pretrained(
                    path, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision
                )
            auto_class = reward_model_class(type(config))
    with _explained(where, key):
        model = auto_class.from_pretrained(path, **kwargs)
    return model


def _truncated_config(path: str, cfg: ModelConfig):
    """The checkpoint's config with only the first num_hidden_layers layers: from_pretrained then loads those
    layers' weights and leaves the rest unused."""
    from transformers import AutoConfig

    with _explained(cfg.name_or_path):
        config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    text = config.get_text_config()  # a vision-language model's language model (the config itself otherwise)
    if cfg.num_hidden_layers > text.num_hidden_layers:
        raise ModelError(
            f"model.num_hidden_layers={cfg.num_hidden_layers} but {cfg.name_or_path} has only "
            f"{text.num_hidden_layers} layers"
        )
    text.num_hidden_layers = cfg.num_hidden_layers
    if getattr(text, "layer_types", None):  # per-layer attention kinds (Qwen3, Gemma) must match the count
        text.layer_types = text.layer_types[: cfg.num_hidden_layers]
    return config


@contextmanager
def _explained(where: str, key: str = POLICY):
    """Turn loading failures a user can fix into one-line ModelErrors naming the settings to change."""
    trust = "model.trust_remote_code" if key == POLICY else f"{key}_trust_remote_code"
    try:
        yield
    except (OSError, ValueError) as exc:
        text = " ".join(str(exc).split())
        if "trust_remote_code" in text:
            raise ModelError(f"{where} ships its own code; set {trust}=true if you trust its authors") from exc
        if isinstance(exc, OSError) and _is_hub(where):
            raise ModelError(
                f"cannot load {where}: not in the local Hugging Face cache and the hub is unreachable or the id is "
                f"wrong; download it first or set {key}=/local/checkpoint ({text[:200]})"
            ) from exc
        # A local checkpoint that from_pretrained rejects (missing weights or tokenizer files, a bad config).
        raise ModelError(f"cannot load {where}: {text[:300]}") from exc


def _is_hub(name_or_path: str) -> bool:
    return resolve_source(name_or_path).kind == "hub"
