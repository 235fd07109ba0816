"""Options of GKD (generalized knowledge distillation). Names and defaults follow ms-swift's
`swift rlhf --rlhf_type gkd`."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from rlhf_lab.config.algorithm import AlgorithmConfig, revision_field, trust_field
from rlhf_lab.config.checks import in_range, positive
from rlhf_lab.config.fields import doc
from rlhf_lab.config.rewards import row_error
from rlhf_lab.errors import ConfigError


@dataclass
class GKDConfig(AlgorithmConfig):
    """Generalized Knowledge Distillation: the student matches the teacher's next-token distribution on dataset
    answers, on the teacher's own answers (seq_kd) or on the student's own samples (lmbda)."""

    teacher_model: str = doc(
        MISSING, "The teacher: a path, hub id or model preset (e.g. smollm2_135m); must share the student's vocabulary."
    )
    teacher_model_revision: str | None = revision_field("the teacher")
    teacher_model_trust_remote_code: bool = trust_field("the teacher")
    beta: float = doc(
        0.5, "Divergence: 0 = forward KL(teacher||student), 0.5 = Jensen-Shannon, 1 = reverse KL(student||teacher)."
    )
    lmbda: float = doc(0.5, "Fraction of batches the student generates itself (on-policy distillation).")
    seq_kd: bool = doc(
        False, "On the other batches, train on the teacher's answers instead of the dataset's (query-only data works)."
    )
    sft_alpha: float = doc(0.0, "Weight of the SFT (next-token) loss added on batches the student did not generate.")
    temperature: float = doc(0.9, "Sampling temperature of the generated answers.")
    max_completion_length: int = doc(512, "Most tokens generated per answer.")

    def __post_init__(self) -> None:
        in_range("beta", self.beta, 0.0, 1.0)
        in_range("lmbda", self.lmbda, 0.0, 1.0)
        positive("sft_alpha", self.sft_alpha, allow_zero=True)
        positive("temperature", self.temperature)
        positive("max_completion_length", self.max_completion_length)

    @property
    def needs_answers(self) -> bool:
        """Whether the dataset's answers are trained on (else query-only rows are enough)."""
        return not self.seq_kd and self.lmbda < 1.0

    def check_data(self, rows: list[dict]) -> None:
        if self.needs_answers:
            missing = next((r for r in rows if not r["has_answer"]), None)
            if missing is not None:
                raise row_error(
                    missing,
                    "messages",
                    "ends with the user's query, but GKD trains on the dataset's answers unless they are generated: "
                    "add the assistant's answer, or set algorithm.seq_kd=true (teacher answers) or algorithm.lmbda=1",
                )

    @property
    def teacher_path(self) -> str:
        from pathlib import Path

        from rlhf_lab.config.presets import model_preset_path, preset_names

        preset = model_preset_path(self.teacher_model)
        if preset:
            return preset
        bare = "/" not in self.teacher_model and ":" not in self.teacher_model
        if bare and not Path(self.teacher_model).expanduser().exists():
            raise ConfigError(
                "algorithm.teacher_model",
                f"{self.teacher_model!r} is not a model preset, a local "
                f"directory or a hub id; presets: {', '.join(preset_names())}",
            )
        return self.teacher_model

    def plan_facts(self, tuner: str, backend: str = "single", cpu_bf16: bool = False):
        from rlhf_lab.planning.facts import PlanFacts

        generates = self.lmbda > 0 or self.seq_kd
        return PlanFacts(
            frozen={"teacher": self.teacher_path}, generated_tokens=self.max_completion_length if generates else 0
        )

    extra_models = ("teacher_model",)

    def model_paths(self) -> dict[str, str]:
        return {"teacher_model": self.teacher_path}
