"""Options of the verbs that work on trained runs: python -m rlhf_lab <verb> key=value ..."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from rlhf_lab.config.checks import in_range, one_of, positive
from rlhf_lab.config.fields import doc
from rlhf_lab.errors import ConfigError

EXPORT_DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class ExportConfig:
    """A run's model as one plain transformers checkpoint: LoRA merged into the base, ready to serve or share."""

    run: str = doc(MISSING, "The run directory: it holds adapter/ (LoRA) or model/ (full tuning, reward models).")
    out: Optional[str] = doc(None, "Where the exported model goes; null = RUN/export.")
    dtype: str = doc("auto", f"Weights' dtype: {', '.join(EXPORT_DTYPES)}; auto = the base checkpoint's own dtype.")
    overwrite: bool = doc(False, "Replace an earlier export at out.")

    def __post_init__(self) -> None:
        one_of("dtype", self.dtype, EXPORT_DTYPES)


@dataclass
class InferConfig:
    """Answers of a model for every prompt of a file, or a chat in the terminal. Names follow ms-swift's infer."""

    model: str = doc(MISSING, "A run directory, an adapter, a model preset (smollm2_135m), a checkpoint or a hub id.")
    data: Optional[str] = doc(
        None, "Prompts: a file or source in any format training reads (images included; SOURCE#N takes N rows)."
    )
    split: str = doc("train", "The split of a dataset folder or hub dataset to read (train, validation, test...).")
    out: Optional[str] = doc(None, "The answers as JSON lines; null = outputs/infer/<model>-<data>-<time>.jsonl.")
    chat: bool = doc(False, "Talk with the model in the terminal instead (multi-turn; /clear starts over, /exit ends).")
    system: Optional[str] = doc(None, "A system message for prompts that have none (and for the chat).")
    max_new_tokens: int = doc(256, "Most tokens per answer.")
    temperature: float = doc(0.0, "0 = greedy (the same answer every time); above 0 samples with this temperature.")
    top_p: float = doc(1.0, "When sampling, draw from the smallest set of tokens whose probability reaches top_p.")
    top_k: int = doc(0, "When sampling, draw from the top_k likeliest tokens only; 0 = no limit.")
    repetition_penalty: float = doc(1.0, "Above 1 discourages repeating tokens already in the text.")
    max_batch_size: int = doc(8, "Prompts per batch of generation.")
    seed: int = doc(42, "Seed of the sampling.")

    def __post_init__(self) -> None:
        positive("max_new_tokens", self.max_new_tokens)
        positive("temperature", self.temperature, allow_zero=True)
        in_range("top_p", self.top_p, 0.0, 1.0)
        positive("top_p", self.top_p)
        positive("top_k", self.top_k, allow_zero=True)
        positive("repetition_penalty", self.repetition_penalty)
        positive("max_batch_size", self.max_batch_size)
        if self.data is None and not self.chat:
            raise ConfigError("data", "is required: a file of prompts (infer data=FILE), or chat=true to talk")
        if self.data is not None and self.chat:
            raise ConfigError("chat", "answers the terminal, not a file; give data=... or chat=true, not both")


@dataclass
class Sampling:
    """How eval samples the answers of pass_k (the settings infer takes under the same names)."""

    max_new_tokens: int = doc(256, "Most tokens per answer.")
    temperature: float = doc(1.0, "Sampling temperature of the k answers per prompt.")
    top_p: float = doc(1.0, "Draw from the smallest set of tokens whose probability reaches top_p.")
    top_k: int = doc(0, "Draw from the top_k likeliest tokens only; 0 = no limit.")
    repetition_penalty: float = doc(1.0, "Above 1 discourages repeating tokens already in the text.")
    seed: int = doc(42, "Seed of the first round of answers (round i uses seed + i).")

    def __post_init__(self) -> None:
        positive("max_new_tokens", self.max_new_tokens)
        positive("temperature", self.temperature)


@dataclass
class ServeRewardConfig:
    """A trained reward model served over HTTP with rlhf_lab's reward protocol (algorithm.reward_server)."""

    model: str = doc(MISSING, "The reward model: an algorithm=rm run directory (its model/) or a saved model folder.")
    host: str = doc("127.0.0.1", "Address to listen on; 0.0.0.0 listens on every interface.")
    port: int = doc(8000, "Port to listen on; 0 = any free port (printed at start).")
    batch_size: int = doc(16, "Answers scored per forward pass.")
    max_request_mb: int = doc(64, "Largest request body accepted, in MiB; a larger one is refused (413) unread.")

    def __post_init__(self) -> None:
        in_range("port", self.port, 0, 65535)
        positive("batch_size", self.batch_size)
        positive("max_request_mb", self.max_request_mb)
