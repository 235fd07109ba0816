"""The training flow of one process: data -> model -> eval before -> train -> save -> eval after."""

from __future__ import annotations

import logging
import pickle
import time

from rlhf_lab.algorithms.common import TrainInputs
from rlhf_lab.config.run import Run
from rlhf_lab.data.images import has_images
from rlhf_lab.data.lengths import check_lengths
from rlhf_lab.data.load import load_splits, write_dropped
from rlhf_lab.errors import ConfigError, Diverged, Interrupted, ModelError, RewardServiceDown
from rlhf_lab.runtime import fingerprint
from rlhf_lab.runtime.interrupts import STOP, training_phase
from rlhf_lab.runtime.ranks import is_main
from rlhf_lab.runtime.reachability import check_models, tracker_mode

log = logging.getLogger("rlhf_lab")


def train(run: Run) -> dict:
    from rlhf_lab.patches import job_scope
    from rlhf_lab.tracking.console import quiet_libraries

    with job_scope(), quiet_libraries(run.logger.verbose):
        return _train(run)


def _train(run: Run) -> dict:
    # Data first: a bad row must stop the run before a multi-GB model loads.
    t_data = time.time()
    splits = load_splits(run.dataset, run.spec.data_format, run.train.seed, images=run.spec.images)
    run.algorithm.check_data(splits.train + splits.val)
    for source in splits.sources:
        log.info(
            "data: %(rows)d training rows from %(source)s (split %(split)s, %(format)s format, %(read)d read)", source
        )
    log.info("held-out: %d rows from %s", len(splits.val), splits.val_origin)
    # Models that come from the Hub, and the dashboard's server: one line now if they cannot be reached.
    check_models(run)
    wandb_mode = tracker_mode(run.logger) if is_main() else None
    # The tokenizer before the model: rows over train.max_length are measured (and dropped or refused) first.
    processing = load_processing(run)
    policy = run.dataset.truncation or run.spec.truncation
    lazy = lazy_plan(run, splits, processing[1], policy)
    lengths = check_lengths(
        splits, processing[1], run.spec.data_format, run.train.max_length, policy, log, train=lazy is None
    )
    data_seconds = time.time() - t_data
    dropped_file = write_dropped(splits.dropped, run.run_dir) if is_main() else None
    if splits.dropped and is_main():
        log.warning("dropped %d rows (listed in %s)", len(splits.dropped), dropped_file)
    run_id = None
    if is_main():
        # From here the directory holds this run: a later command may continue it only with the same settings.
        run_id = fingerprint.write(run.run_dir, run.resolved)
        from rlhf_lab.training.checkpoint_identity import signing_key

        signing_key()  # made now: a cache it cannot be written to is one line before the model loads, not mid-run
    note_resume(run)

    from transformers import set_seed

    from rlhf_lab.models.precision import resolve_bf16
    from rlhf_lab.models.tuners import count_parameters
    from rlhf_lab.tracking.console import quiet_loaded_libraries
    from rlhf_lab.tracking.metrics import MetricsFile
    from rlhf_lab.tracking.output import print_result, save_final_model
    from rlhf_lab.tracking.trackers import Tracker, start_tracking
    from rlhf_lab.training.checkpoints import install_atomic_saves
    from rlhf_lab.training.resume_intervals import CommandIntervals
    from rlhf_lab.training.stop_callback import StopAtStepEnd

    quiet_loaded_libraries()  # the data checks passed and the libraries are loading: their bars and handlers go
    set_seed(run.train.seed)
    bf16 = resolve_bf16(run.train.bf16)
    estimate = planned_bytes(run, bf16, lengths)
    from rlhf_lab.planning.measure import PeakMemory, memory_plan

    peak = PeakMemory()  # from just before the model loads
    t_load = time.time()
    inputs = load_inputs(run, splits, bf16, processing, lazy)
    log.info("model loaded in %.1f s, bf16=%s", time.time() - t_load, bf16)

    # Only the main process logs to dashboards: one wandb run per run, whatever the process count.
    tracker = start_tracking(run, wandb_mode) if is_main() else Tracker()
    try:
        # Resuming keeps the records up to the checkpoint's step; later ones were lost with the stopped run.
        metrics = MetricsFile(
            run.run_dir / "metrics.jsonl", keep_until_step=run.resume.step if run.resume.path else None
        )
        stop = StopAtStepEnd()
        from rlhf_lab.training.divergence import StopOnNonFinite

        diverged = StopOnNonFinite()
        watch = [diverged] if run.train.stop_on_nan else []
        inputs.callbacks = [CommandIntervals(), metrics, *tracker.callbacks, stop, *watch]
        tokenizer = inputs.tokenizer
        trainer = build_trainer(run, inputs)
        if is_main():
            from rlhf_lab.tracking.progress import use_console

            use_console(trainer, run.train.max_steps)
        install_atomic_saves(trainer, run.train.save_total_limit, run_id)
        resume_from = restore_lab_state(trainer, run)
        trainable, total = count_parameters(trainer.model)
        log.info("%s trainable of %s parameters", f"{trainable:,}", f"{total:,}")

        evaluation = None
        evaluate = run.spec.load_evaluation()
        if evaluate is not None and run.train.eval and splits.val:
            evaluation = evaluate(run, tokenizer, splits.val, bf16, trainer)
        before = evaluation.evaluate(trainer.model) if evaluation else None

        t_train = time.time()
        with training_phase():
            try:
                output = train_from(trainer, resume_from)
            except RewardServiceDown as e:
                raise RewardServiceDown(f"{e}; {checkpoint_after_failure(trainer, run)}") from None
        train_seconds = time.time() - t_train
        measured = peak.measured_bytes()
        if diverged.found:
            key, value, step = diverged.found
            raise Diverged(
                f"{key} became {value} by step {step}, so training stopped there and no model was saved; lower "
                "train.learning_rate, check the rewards or data for extreme values, or set train.stop_on_nan=false"
            )
        if stop.stopped:
            checkpoint = run.run_dir / "checkpoints" / f"checkpoint-{trainer.state.global_step}"
            raise Interrupted(
                STOP.name or "SIGTERM",
                str(checkpoint) if checkpoint.is_dir() else None,
                exit_code=128 + (STOP.received or 15),
            )
        saved = save_final_model(trainer, run)
        if lazy is not None:
            lengths["train"] = finish_lazy(lazy, splits, run)
        after = evaluation.evaluate(trainer.model) if evaluation else None

        result = {
            "algorithm": run.algorithm.name,
            "model": run.model.name_or_path,
            "tuner": run.tuner.name,
            "train_rows": len(splits.train),
            "val_rows": len(splits.val),
            "dropped_rows": len(splits.dropped),
            "data_sources": splits.sources,
            "val_source": splits.val_origin,
            "lengths": lengths,
            # Reading, converting and checking every row, loading the tokenizer and measuring the rows (unless they
            # are read per batch): everything before the model loads.
            "data_seconds": round(data_seconds, 2),
            "bf16": bf16,
            "trainable_parameters": trainable,
            "global_steps": trainer.state.global_step,
            "train_seconds": round(train_seconds, 2),
            "seconds_per_step": round(train_seconds / max(trainer.state.global_step, 1), 3),
            "train_start_at_s": metrics.train_start_at,
            "first_step_at_s": metrics.first_step_at,
            "final_train_metrics": metrics.last_train_metrics(),
            "train_loss": output.training_loss,
            "eval_before": before,
            "eval_after": after,
            "saved_model": str(saved),
            "resumed_from": str(run.resume.path) if run.resume.path else None,
            # This process's memory: a sweep's jobs run one after another in it (peak: since the process started).
            **memory_fields(),
            "skipped_checkpoints": [{"path": p, "reason": r} for p, r in run.resume.skipped],
            # Algorithm-specific figures (e.g. GRPO's zero-variance fractions and dynamic-sampling counts).
            **trainer.summary_extras(),
            "memory_plan": memory_plan(estimate, measured),
        }
        if is_main():
            from rlhf_lab.tracking.compare import plot_curves
            from rlhf_lab.tracking.report import CURVES_PNG

            tracker.log_summary(result)
            tracker.log_media(result, plot_curves(run.run_dir / CURVES_PNG, [run.run_dir]))
            print_result(run, result)
        return result
    finally:
        tracker.finish()


def lazy_plan(run: Run, splits, tokenizer, policy: str):
    """Rows read and tokenized per batch when dataset.lazy_tokenize says so (null: above LAZY_ROWS training rows, where
    the algorithm can); None to tokenize up front. Rows with images always go per batch (the vision path)."""
    from rlhf_lab.algorithms.lazy_rows import LazyPlan
    from rlhf_lab.config.dataset import LAZY_ROWS
    from rlhf_lab.data.lengths import LengthCheck

    wanted = run.dataset.lazy_tokenize
    if wanted is None:
        blocker = run.algorithm.lazy_blocker()
        wanted = len(splits.train) > LAZY_ROWS and blocker is None
        if len(splits.train) > LAZY_ROWS and blocker:
            log.info("tokenizing %d rows before training: %s", len(splits.train), blocker)
    if not wanted or has_images(splits.train):
        return None
    log.info("%d training rows: read, measured and tokenized per batch (dataset.lazy_tokenize)", len(splits.train))
    check = LengthCheck(tokenizer, run.spec.data_format, run.train.max_length, policy)
    return LazyPlan(splits.train, check, run.train.seed)


def finish_lazy(lazy, splits, run: Run) -> dict:
    """The length figures of the rows drawn per batch; rows the policy replaced join dropped_rows.jsonl."""
    check = lazy.lengths
    line = check.describe("training (rows drawn)")
    if line:
        log.warning(line)
    if check.dropped:
        splits.dropped.extend(check.dropped)
        if is_main():
            write_dropped(splits.dropped, run.run_dir)
    return {**check.summary(), "per_batch": True}


def build_trainer(run: Run, inputs: TrainInputs):
    """The algorithm's trainer; under bf16 autocast a LoRA run's frozen base weights are then stored in bf16."""
    from rlhf_lab.algorithms.contract import check_contract
    from rlhf_lab.models.frozen_base import frozen_base_blocker, generate_under_autocast, store_frozen_base_in_bf16

    trainer = run.spec.load_builder()(run, inputs)
    check_contract(trainer, run.spec.builder)
    lora = inputs.peft_config is not None
    if frozen_base_blocker(inputs.bf16, lora, run.distributed.backend, run.spec.merge_adapter) is None:
        cast = store_frozen_base_in_bf16(trainer.model)
        if hasattr(trainer.model, "generate"):  # PPO's policy-and-value pair samples inside its own autocast
            generate_under_autocast(trainer.model, trainer.accelerator.autocast)
        log.info("frozen base: %s weights stored in bf16 (autocast computes with them in bf16)", f"{cast:,}")
    return trainer


def load_processing(run: Run) -> tuple:
    """(a vision-language model's processor or None, the tokenizer); then the settings that depend on the model's
    kind and weight names are checked, before it loads."""
    from rlhf_lab.models.load import load_processor, load_tokenizer

    processor = load_processor(run.model)
    tokenizer = processor.tokenizer if processor is not None else load_tokenizer(run.model)
    run.algorithm.prepare_tokenizer(tokenizer, run.model.name_or_path)
    check_model_settings(run, vision=processor is not None)
    return processor, tokenizer


def check_model_settings(run: Run, vision: bool) -> None:
    """Settings that would do nothing on this model, or that the libraries would refuse once it has loaded."""
    from pathlib import Path

    from rlhf_lab.models.checkpoint_names import check_target_modules
    from rlhf_lab.models.load import local_checkpoint
    from rlhf_lab.models.source import resolve_source

    if not vision:
        for key in ("min_pixels", "max_pixels"):
            if getattr(run.model, key) is not None:
                raise ConfigError(f"model.{key}", f"sizes images, but {run.model.name_or_path} is a text model")
        if run.tuner.freeze_vit is False:
            raise ConfigError("tuner.freeze_vit", f"applies to a vision tower, and {run.model.name_or_path} has none")
    target = getattr(run.tuner, "target_modules", None)
    if target is not None:
        folder = Path(local_checkpoint(resolve_source(run.model.name_or_path)))
        check_target_modules(target, folder, run.model.name_or_path)


def load_inputs(run: Run, splits, bf16: bool, processing: tuple | None = None, lazy=None) -> TrainInputs:
    """Tokenizer (and a vision-language model's processor), model and tuner: what every builder receives."""
    from rlhf_lab.models.load import load_causal_lm
    from rlhf_lab.models.tuners import peft_config
    from rlhf_lab.vision.models import freeze_vision

    processor, tokenizer = processing or load_processing(run)
    if has_images(splits.train + splits.val) and processor is None:
        raise ModelError(
            f"the rows have images but {run.model.name_or_path} is a text-only model; "
            "use a vision-language model (e.g. model=tiny_vl, model=qwen2_5_vl_7b)"
        )
    model = load_causal_lm(run.model, bf16, head=run.spec.model_head)
    # Vision-language models: the frozen vision parts get no gradients and no adapters.
    frozen_linears = freeze_vision(model, run.tuner) if processor is not None else []
    return TrainInputs(
        model=model,
        tokenizer=tokenizer,
        splits=splits,
        bf16=bf16,
        peft_config=peft_config(
            run.tuner, run.algorithm.disable_dropout, head=run.spec.model_head, exclude=frozen_linears
        ),
        processor=processor,
        lazy=lazy,
    )


def note_resume(run: Run) -> None:
    """Say where the run continues from and which checkpoints it passed over."""
    from rlhf_lab.runtime.ranks import barrier

    if is_main():
        for path, reason in run.resume.skipped:
            log.warning("skipping checkpoint %s: %s", path, reason)
        if run.resume.path:
            log.info("resuming from %s (step %d)", run.resume.path, run.resume.step)
    barrier()


def planned_bytes(run: Run, bf16: bool, lengths: dict) -> float | None:
    """The memory plan's estimate; a plan that cannot be made is a warning, never a failed run."""
    try:
        return _planned_bytes(run, bf16, lengths)
    except Exception as e:  # noqa: BLE001 - the plan is a record beside the run, not part of it
        log.warning("no memory plan for this run (%s: %s)", type(e).__name__, e)
        return None


def _planned_bytes(run: Run, bf16: bool, lengths: dict) -> float | None:
    """The planner's estimate of this process's training memory (None where the model's shape is not known), for
    the run's own rows: sequences as long as its longest row (prompt plus answer where it generates), and on a CPU
    the mapped checkpoint file."""
    import dataclasses
    from pathlib import Path

    import torch

    from rlhf_lab.errors import UserError
    from rlhf_lab.models.load import local_checkpoint
    from rlhf_lab.models.source import resolve_source
    from rlhf_lab.planning.memory import breakdown
    from rlhf_lab.planning.plan import setup_of

    cpu = not torch.cuda.is_available()
    try:
        setup = setup_of(run, cpu=cpu)
    except UserError:
        return None
    longest = lengths.get("train", {}).get("longest")
    tokens = None
    if longest:
        tokens = min(run.train.max_length, longest + setup.facts.generated_tokens)
    host = 0.0
    if cpu:  # every checkpoint the run loads stays mapped into the process
        paths = {run.model.name_or_path, *(p for p in {**setup.facts.frozen, **setup.facts.trained}.values() if p)}
        for path in paths:
            folder = Path(local_checkpoint(resolve_source(path)))
            if folder.is_dir():
                host += float(sum(f.stat().st_size for f in folder.glob("*.safetensors")))
        if setup.engine == "deepspeed" and setup.zero_stage == 3:
            # Loading under ZeRO-3 builds the whole model in fp32 in each process before partitioning it.
            host += setup.shape.params * 4.0
    return breakdown(dataclasses.replace(setup, bf16=bf16, sequence_tokens=tokens, host_checkpoint_bytes=host))["total"]


def checkpoint_after_failure(trainer, run: Run) -> str:
    """Save the training as it stands after its last finished step (every process takes part), and say where."""
    step = trainer.state.global_step
    if step == 0:
        return "no training step had finished, so nothing was saved; run the same command again once it answers"
    folder = run.run_dir / "checkpoints" / f"checkpoint-{step}"
    if not folder.is_dir():
        trainer._save_checkpoint(trainer.model, None)
    return f"training stopped after step {step} with a checkpoint in {folder}; the same command resumes from it"


def train_from(trainer, checkpoint: str | None):
    """trainer.train, resumed from checkpoint if given. Under single and ddp the checkpoint's files are read
    weights-only (tensors and plain containers): one that holds other objects is refused rather than unpickled.
    DeepSpeed ZeRO and sharded FSDP unpickle theirs; build_run has already refused such a checkpoint unless this
    user's runs wrote it (training/checkpoint_identity.py) or train.trust_checkpoint says so."""
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    except pickle.UnpicklingError as e:
        if checkpoint is None:
            raise
        reason = str(e).strip().splitlines()[0]
        raise ConfigError(
            "train.resume",
            f"{checkpoint} holds a file that is not plain tensors, which weights-only loading refused ({reason}); "
            "resume only from checkpoints your own runs wrote, or start over with train.resume=never",
        ) from None


def restore_lab_state(trainer, run: Run) -> str | None:
    """The checkpoint to hand to trainer.train, after giving the algorithm's own state back to the trainer."""
    from rlhf_lab.training.checkpoints import read_lab_state

    if run.resume.path is None:
        return None
    state = read_lab_state(run.resume.path)
    if state is not None:
        trainer.lab_restore_state(state)
    return str(run.resume.path)


def memory_fields() -> dict:
    import resource

    import psutil

    return {
        "rss_mb": round(psutil.Process().memory_info().rss / 2**20),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
