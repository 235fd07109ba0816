"""config.json fields of the preset models, for plans made where their checkpoints are not at hand (a laptop
planning a GPU run, a machine without the hub). A checkpoint's own config.json, when found, wins."""

from __future__ import annotations

_QWEN3_TEXT = {"head_dim": 128, "num_key_value_heads": 8, "num_attention_heads": 32, "vocab_size": 151936}

KNOWN_SHAPES: dict[str, dict] = {
    "Qwen/Qwen3-8B": {
        **_QWEN3_TEXT,
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": 36,
        "tie_word_embeddings": False,
        "max_position_embeddings": 40960,
    },
    "Qwen/Qwen3-4B": {
        **_QWEN3_TEXT,
        "hidden_size": 2560,
        "intermediate_size": 9728,
        "num_hidden_layers": 36,
        "tie_word_embeddings": True,
        "max_position_embeddings": 40960,
    },
    "Qwen/Qwen2.5-VL-7B-Instruct": {
        "text_config": {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
            "max_position_embeddings": 128000,
        },
        "vision_config": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "temporal_patch_size": 2,
            "in_chans": 3,
        },
        "tie_word_embeddings": False,
    },
    "Qwen/Qwen3-VL-8B-Instruct": {
        "text_config": {
            **_QWEN3_TEXT,
            "hidden_size": 4096,
            "intermediate_size": 12288,
            "num_hidden_layers": 36,
            "max_position_embeddings": 262144,
        },
        "vision_config": {
            "depth": 27,
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "out_hidden_size": 4096,
            "patch_size": 16,
            "temporal_patch_size": 2,
            "in_channels": 3,
        },
        "tie_word_embeddings": False,
    },
    # SmolLM2-135M-Instruct (the GGUF the smollm2_135m preset converts).
    "SmolLM2-135M-Instruct": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
    },
}
