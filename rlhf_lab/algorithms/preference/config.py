"""Options of the preference algorithms: DPO, KTO, CPO, SimPO, ORPO and reward models. Parameter names and defaults
follow ms-swift's `swift rlhf`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlhf_lab.config.algorithm import AlgorithmConfig, revision_field, trust_field
from rlhf_lab.config.checks import in_range, one_of, positive, str_or_list
from rlhf_lab.config.fields import doc
from rlhf_lab.errors import ConfigError

# Every loss TRL 1.16's DPOTrainer implements ('sft' is reached through rpo_alpha or a combined list).
DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
    "sft",
)
# Losses that read label_smoothing (sigmoid through cDPO, implemented in algorithms/preference/dpo.py).
LABEL_SMOOTHING_LOSSES = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired")
REF_MODEL_HELP = "Path or hub id of a separate reference model; null = the base model (LoRA: adapters disabled)."
PRECOMPUTE_HELP = "Compute the reference log-probs once before training, not every step."


def _no_precompute_with_images(precompute: bool, rows: list[dict]) -> None:
    # TRL computes reference log-probs of vision rows only batch by batch (their pixels are decoded per batch).
    from rlhf_lab.data.images import has_images

    if precompute and has_images(rows):
        raise ConfigError(
            "algorithm.precompute_ref_log_probs",
            "is not supported for rows with images; set it to false (the reference runs with each batch)",
        )


def _precompute_blocks_lazy(precompute: bool) -> str | None:
    # TRL computes every row's reference log-probs when the trainer is built, from tokenized rows.
    return "algorithm.precompute_ref_log_probs=true reads every tokenized row before training" if precompute else None


# TRL's experimental CPO and ORPO trainers tokenize every row when they are built.
_TOKENIZES_UP_FRONT = "TRL's {} trainer tokenizes every row when it is built"


class PairsPlan:
    """Pairs train on two sequences per row (chosen and rejected); a reference model is held where one is used."""

    # Sequences whose activations the training keeps per row (KTO's KL batch is a forward without gradients).
    planned_sequences = 2

    def plan_facts(self, tuner: str, backend: str = "single", cpu_bf16: bool = False):
        from rlhf_lab.planning.facts import PlanFacts

        frozen = {}
        uses_reference = hasattr(self, "ref_model") and not self.precompute_ref_log_probs
        if uses_reference and (tuner == "full" or self.ref_model):  # LoRA's reference is its base, adapters off
            frozen["reference"] = self.ref_model
        return PlanFacts(sequences_per_row=self.planned_sequences, frozen=frozen)


@dataclass
class DPOConfig(PairsPlan, AlgorithmConfig):
    beta: float = doc(0.1, "Strength of the implicit KL constraint (the regularisation tau for ipo).")
    loss_type: Any = doc(
        "sigmoid", "One loss name, or a list combined with loss_weights (e.g. [sigmoid, bco_pair, sft] is MPO)."
    )
    loss_weights: list[float] | None = doc(None, "Weights of a combined loss_type list; null = 1.0 each.")
    label_smoothing: float = doc(
        0.0, "Probability that a preference label is flipped: cDPO for sigmoid, the epsilon of robust, exo_pair, aot."
    )
    rpo_alpha: float = doc(0.0, "Weight of the chosen answer's NLL added to the preference loss (RPO); 0 = off.")
    ref_model: str | None = doc(None, REF_MODEL_HELP)
    ref_model_revision: str | None = revision_field("the reference model")
    ref_model_trust_remote_code: bool = trust_field("the reference model")
    precompute_ref_log_probs: bool = doc(False, PRECOMPUTE_HELP)
    # Same log-probs with fewer tokens per forward. Text-only models with sdpa or eager attention; elsewhere TRL's
    # layout is used.
    share_prompt: bool = doc(
        True, "Run each pair's prompt once for both answers; false = TRL's layout (prompt repeated in both rows)."
    )

    def __post_init__(self) -> None:
        positive("beta", self.beta)
        losses = str_or_list("loss_type", self.loss_type)
        for loss in losses:
            if loss not in DPO_LOSS_TYPES:
                raise ConfigError("loss_type", f"unknown DPO loss {loss!r}; choose from: {', '.join(DPO_LOSS_TYPES)}")
        if self.loss_weights is not None and len(self.loss_weights) != len(losses):
            raise ConfigError(
                "loss_weights",
                f"has {len(self.loss_weights)} weights for {len(losses)} losses {losses}; give one per loss",
            )
        in_range("label_smoothing", self.label_smoothing, 0.0, 0.5, high_open=True)
        if "exo_pair" in losses and self.label_smoothing == 0:
            raise ConfigError("label_smoothing", "exo_pair needs a label_smoothing > 0 (the paper uses 1e-3)")
        if self.label_smoothing > 0 and not set(losses) & set(LABEL_SMOOTHING_LOSSES):
            raise ConfigError(
                "label_smoothing",
                f"has no effect on {losses}; it applies to {', '.join(LABEL_SMOOTHING_LOSSES)}",
            )
        positive("rpo_alpha", self.rpo_alpha, allow_zero=True)

    extra_models = ("ref_model",)

    def model_paths(self) -> dict[str, str]:
        return {"ref_model": self.ref_model} if self.ref_model else {}

    @property
    def losses(self) -> list[str]:
        return str_or_list("loss_type", self.loss_type)

    def check_data(self, rows: list[dict]) -> None:
        _no_precompute_with_images(self.precompute_ref_log_probs, rows)

    def lazy_blocker(self) -> str | None:
        return _precompute_blocks_lazy(self.precompute_ref_log_probs)


@dataclass
class KTOConfig(PairsPlan, AlgorithmConfig):
    """Kahneman-Tversky Optimization on single answers labelled desirable (true) or undesirable (false)."""

    planned_sequences = 1

    beta: float = doc(0.1, "Strength of the KL constraint to the reference model (higher = closer to it).")
    # Raise the rarer side's weight on unbalanced data.
    desirable_weight: float = doc(1.0, "Weight of the loss on answers labelled desirable.")
    undesirable_weight: float = doc(1.0, "Weight of the loss on answers labelled undesirable.")
    loss_type: str = doc("kto", "kto, or apo_zero_unpaired (no KL estimate).")
    ref_model: str | None = doc(None, REF_MODEL_HELP)
    ref_model_revision: str | None = revision_field("the reference model")
    ref_model_trust_remote_code: bool = trust_field("the reference model")
    precompute_ref_log_probs: bool = doc(False, PRECOMPUTE_HELP)

    def __post_init__(self) -> None:
        positive("beta", self.beta)
        positive("desirable_weight", self.desirable_weight)
        positive("undesirable_weight", self.undesirable_weight)
        one_of("loss_type", self.loss_type, ("kto", "apo_zero_unpaired"))

    extra_models = ("ref_model",)

    def model_paths(self) -> dict[str, str]:
        return {"ref_model": self.ref_model} if self.ref_model else {}

    def check_run(self, parts: dict) -> None:
        # KTO's KL term is estimated from the other answers of the same device batch: one row gives nothing.
        if self.loss_type == "kto" and parts["train"].per_device_train_batch_size < 2:
            raise ConfigError(
                "train.per_device_train_batch_size",
                "KTO estimates its KL term from the other rows of a batch, so it needs at least 2 rows per device "
                "batch; raise it, or use algorithm.loss_type=apo_zero_unpaired",
            )

    def check_data(self, rows: list[dict]) -> None:
        _no_precompute_with_images(self.precompute_ref_log_probs, rows)

    def lazy_blocker(self) -> str | None:
        return _precompute_blocks_lazy(self.precompute_ref_log_probs)


@dataclass
class CPOConfig(PairsPlan, AlgorithmConfig):
    """Contrastive Preference Optimization: a reference-free preference loss plus cpo_alpha x chosen NLL."""

    beta: float = doc(0.1, "Scale of the log-prob margin in the preference loss (the regularisation tau for ipo).")
    cpo_alpha: float = doc(1.0, "Weight of the NLL of the chosen answer.")
    loss_type: str = doc("sigmoid", "sigmoid, hinge or ipo (SimPO is algorithm=simpo).")
    label_smoothing: float = doc(0.0, "Probability that a preference label is flipped (sigmoid only).")

    def __post_init__(self) -> None:
        positive("beta", self.beta)
        positive("cpo_alpha", self.cpo_alpha, allow_zero=True)
        one_of("loss_type", self.loss_type, ("sigmoid", "hinge", "ipo"))
        in_range("label_smoothing", self.label_smoothing, 0.0, 0.5, high_open=True)
        if self.label_smoothing > 0 and self.loss_type != "sigmoid":
            raise ConfigError("label_smoothing", f"has no effect on loss_type={self.loss_type}; it applies to sigmoid")

    @property
    def trl_loss_type(self) -> str:
        return self.loss_type

    def lazy_blocker(self) -> str | None:
        return _TOKENIZES_UP_FRONT.format("CPO")


@dataclass
class SimPOConfig(PairsPlan, AlgorithmConfig):
    """SimPO: length-normalised log-prob margin with a target margin gamma; cpo_alpha > 0 gives CPO-SimPO."""

    beta: float = doc(2.0, "Scale of the length-normalised log-prob margin.")
    # TRL's default is 0.5; ms-swift and the paper's recipes use 1.0.
    simpo_gamma: float = doc(1.0, "Target reward margin.")
    cpo_alpha: float = doc(0.0, "Weight of the NLL of the chosen answer (> 0 gives CPO-SimPO).")
    label_smoothing: float = doc(0.0, "Probability that a preference label is flipped.")

    def __post_init__(self) -> None:
        positive("beta", self.beta)
        positive("simpo_gamma", self.simpo_gamma, allow_zero=True)
        positive("cpo_alpha", self.cpo_alpha, allow_zero=True)
        in_range("label_smoothing", self.label_smoothing, 0.0, 0.5, high_open=True)

    @property
    def trl_loss_type(self) -> str:
        return "simpo"

    def lazy_blocker(self) -> str | None:
        return _TOKENIZES_UP_FRONT.format("CPO (SimPO)")


@dataclass
class ORPOConfig(PairsPlan, AlgorithmConfig):
    """ORPO: SFT on the chosen answer plus beta x the log odds-ratio loss; no reference model."""

    beta: float = doc(0.1, "Weight of the odds-ratio term (lambda in the paper).")

    def __post_init__(self) -> None:
        positive("beta", self.beta)

    def lazy_blocker(self) -> str | None:
        return _TOKENIZES_UP_FRONT.format("ORPO")


@dataclass
class RewardModelConfig(PairsPlan, AlgorithmConfig):
    """A sequence-classification reward model trained on pairs (Bradley-Terry), optionally with a margin column."""

    center_rewards_coefficient: float | None = doc(
        None, "Weight of a term pushing rewards towards zero mean (0.01 in the paper that introduced it); null = off."
    )

    def __post_init__(self) -> None:
        if self.center_rewards_coefficient is not None:
            positive("center_rewards_coefficient", self.center_rewards_coefficient, allow_zero=True)

    def check_run(self, parts: dict) -> None:
        d = parts["distributed"]
        sharded = d.backend == "fsdp" or (d.backend == "deepspeed" and d.zero_stage == 3)
        if sharded and parts["tuner"].name == "lora":
            # The LoRA reward model is saved merged into a full model, which needs the whole weights in one process.
            raise ConfigError(
                "distributed",
                f"algorithm=rm with tuner=lora saves the adapter merged into the model, which sharded weights "
                f"({'fsdp' if d.backend == 'fsdp' else 'zero3'}) do not allow; use distributed=zero2 or ddp, "
                "or tuner=full",
            )
