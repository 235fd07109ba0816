"""Generalized knowledge distillation on TRL's experimental GKDTrainer, with ms-swift's sft_alpha added."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, extra_model, trainer_args, trl_dataset
from rlhf_lab.algorithms.gkd.config import GKDConfig
from rlhf_lab.config.run import Run
from rlhf_lab.errors import ModelError

TRL_COLUMNS = ("messages",)


def check_shared_vocabulary(student_tokenizer, teacher_tokenizer, student, teacher, teacher_name: str) -> None:
    """GKD compares full next-token distributions, so token i must mean the same thing to both models."""
    if student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise ModelError(
            f"the teacher {teacher_name} has a different tokenizer vocabulary from the student "
            f"({len(teacher_tokenizer)} vs {len(student_tokenizer)} tokens); GKD needs a teacher and student that "
            "share one (e.g. models of the same family)"
        )
    s_size = student.get_input_embeddings().weight.shape[0]
    t_size = teacher.get_input_embeddings().weight.shape[0]
    if s_size != t_size:
        raise ModelError(
            f"the teacher {teacher_name} has {t_size} token embeddings and the student {s_size}; GKD needs equal "
            "vocabulary sizes (resize one model's embeddings to the other's)"
        )


def load_teacher(run: Run, inputs: TrainInputs):
    from rlhf_lab.models.load import is_vision_model, load_causal_lm, load_tokenizer

    cfg: GKDConfig = run.algorithm
    teacher_cfg, key = extra_model(run, "teacher_model")
    if inputs.vision and not is_vision_model(teacher_cfg, key=key):
        raise ModelError(
            f"algorithm.teacher_model={cfg.teacher_model} is a text-only model, but the rows have images; the teacher "
            "must see them too: give a vision-language teacher of the student's family"
        )
    teacher_tokenizer = load_tokenizer(teacher_cfg, key)
    teacher = load_causal_lm(teacher_cfg, inputs.bf16, key=key)
    check_shared_vocabulary(inputs.tokenizer, teacher_tokenizer, inputs.model, teacher, cfg.teacher_model)
    teacher.requires_grad_(False).eval()
    return teacher


def build(run: Run, inputs: TrainInputs):
    from trl.experimental.gkd import GKDConfig as TRLGKDConfig

    from rlhf_lab.algorithms.gkd.trainer import LabGKDTrainer

    cfg: GKDConfig = run.algorithm
    args = TRLGKDConfig(
        **trainer_args(run, inputs.bf16),
        temperature=cfg.temperature,
        lmbda=cfg.lmbda,
        beta=cfg.beta,
        max_new_tokens=cfg.max_completion_length,
        seq_kd=cfg.seq_kd,
        max_length=run.train.max_length,
    )
    from rlhf_lab.algorithms.lazy_rows import row_indices

    lazy, rows = inputs.lazy, inputs.splits.train
    if inputs.vision:
        from rlhf_lab.vision.batches import distill_collator, index_dataset, pixel_bounds

        # TRL's GKDTrainer reads processing_class.pad_token_id, which a processor keeps on its tokenizer.
        inputs.processor.pad_token_id = inputs.processor.tokenizer.pad_token_id
        kwargs = inputs.trainer_kwargs(index_dataset(rows))
        kwargs["data_collator"] = distill_collator(inputs.processor, rows, pixel_bounds(run), run.train.max_length)
    else:
        kwargs = inputs.trainer_kwargs(row_indices(len(rows)) if lazy else trl_dataset(rows, TRL_COLUMNS))
    trainer = LabGKDTrainer(
        teacher_model=load_teacher(run, inputs),
        args=args,
        sft_alpha=cfg.sft_alpha,
        vision=inputs.vision,
        **kwargs,
    )
    if inputs.vision:
        return trainer
    # TRL's GKD collator tokenizes each batch itself: read per batch, its rows only need decoding.
    return lazy.attach(trainer, TRL_COLUMNS) if lazy else trainer
