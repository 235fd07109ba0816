"""A model's shape, as its config.json gives it, and the parameter counts the planner needs.

The shape is read from the checkpoint's config.json (a local folder, the Hugging Face cache, rlhf_lab's converted
cache), or taken from `model.shape` (a preset's copy of those fields, for hub models not at hand)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlhf_lab.errors import ModelError

# The linear layers of one decoder layer: name -> (fan in, fan out) as functions of the shape.
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Shape:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied: bool
    # Everything outside the language model (a vision tower and its projector), counted from its own config.
    extra_params: int = 0
    max_positions: int | None = None

    @classmethod
    def from_config(cls, config: dict, where: str) -> Shape:
        text = config.get("text_config") or config
        try:
            heads = int(text["num_attention_heads"])
            hidden = int(text["hidden_size"])
            shape = cls(
                vocab=int(text.get("vocab_size") or config["vocab_size"]),
                hidden=hidden,
                layers=int(text["num_hidden_layers"]),
                heads=heads,
                kv_heads=int(text.get("num_key_value_heads") or heads),
                head_dim=int(text.get("head_dim") or hidden // heads),
                intermediate=int(text["intermediate_size"]),
                tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
                extra_params=vision_params(config.get("vision_config")),
                max_positions=text.get("max_position_embeddings"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(
                f"{where}: the model's config lacks {e} for the plan (a decoder-only transformer)"
            ) from None
        return shape

    def linear(self, name: str) -> tuple[int, int]:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }[name]

    @property
    def layer_params(self) -> int:
        return sum(a * b for a, b in map(self.linear, LINEARS)) + 2 * self.hidden  # two norms

    @property
    def params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * self.layer_params + embeddings + self.hidden + self.extra_params

    def lora_params(self, r: int, targets: list[str] | str) -> int:
        names = (
            LINEARS
            if targets == "all-linear" or "all-linear" in list(targets)
            else [t for t in targets if t in LINEARS]
        )
        return self.layers * sum(r * (a + b) for a, b in map(self.linear, names))


def vision_params(vision: dict | None) -> int:
    """A vision tower's parameters from its config (ViT blocks plus the patch embedding), 0 without one."""
    if not vision:
        return 0
    width = int(vision.get("hidden_size") or vision.get("embed_dim") or 0)
    depth = int(vision.get("depth") or vision.get("num_hidden_layers") or 0)
    mlp = int(vision.get("intermediate_size") or (vision.get("mlp_ratio", 4) * width))
    patch = int(vision.get("patch_size", 14))
    temporal = int(vision.get("temporal_patch_size", 1))
    channels = int(vision.get("in_channels", vision.get("in_chans", 3)))
    out = int(vision.get("out_hidden_size") or vision.get("hidden_size") or width)
    block = 4 * width * width + 2 * width * mlp + 4 * width
    merger = 4 * width * 4 * width + 4 * width * out  # the 2x2 patch merger's MLP
    return depth * block + channels * temporal * patch * patch * width + merger


def read_config(path: str, revision: str | None = None) -> dict | None:
    """config.json of a local checkpoint folder, or of a hub id (at revision) in the Hugging Face cache; None when
    not at hand."""
    folder = Path(path).expanduser()
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text())
    if "/" in path and not folder.exists():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json", revision=revision)
        if isinstance(cached, str):
            return json.loads(Path(cached).read_text())
    return None
