"""A tiny random Qwen2-VL (2 text layers, hidden 64, a depth-2 vision tower) with a real processor: the SmolLM2
tokenizer plus the four vision tokens and Qwen2-VL's image processor. Every vision code path runs on it in seconds.
"""

from __future__ import annotations

from pathlib import Path

from rlhf_lab.models.tiny import TOKENIZER_SOURCE, publish_built
from rlhf_lab.paths import build_once, cache_dir, resolve_pkg_path

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
# Small images stay small: 28x28 to 112x112 pixels (1 to 16 vision tokens after the 2x2 merge).
MIN_PIXELS = 28 * 28
MAX_PIXELS = 112 * 112

# ChatML, as SmolLM2 and Qwen write it, with image blocks rendered as Qwen-VL's vision tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for block in message['content'] %}"
    "{% if block['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif block['type'] == 'text' %}{{ block['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def ensure_tiny_vl() -> Path:
    """Build (once, seeded) and cache the tiny vision-language model and its processor."""
    target = cache_dir() / "models" / "tiny-qwen2-vl-v1"
    return build_once(target, lambda: _build(target))


def _build(target: Path) -> Path:
    import torch
    from transformers import (
        AutoTokenizer,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    from rlhf_lab.models.embedded import ensure_converted

    tokenizer = AutoTokenizer.from_pretrained(ensure_converted(resolve_pkg_path(TOKENIZER_SOURCE)))
    tokenizer.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            # head_dim 16: the rotary halves (8) split over (time, height, width)
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    pixels = dict(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=CHAT_TEMPLATE,
    )
    return publish_built(target, model, processor)
