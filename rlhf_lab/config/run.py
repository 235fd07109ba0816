"""The Run: the validated, frozen result of composing the config, with derived values.

Built from the composed DictConfig in one place; everything after it (launcher, builders, trainers)
reads the Run and never the raw config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from rlhf_lab.algorithms.registry import AlgorithmSpec, get_spec
from rlhf_lab.config.algorithm import AlgorithmConfig
from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.config.distributed import DistributedConfig
from rlhf_lab.config.extras import installed, missing_message
from rlhf_lab.config.keys import check_known_keys, check_selectors
from rlhf_lab.config.logger import LoggerConfig
from rlhf_lab.config.model import ModelConfig
from rlhf_lab.config.secrets import find_secrets, mask_overrides, masked
from rlhf_lab.config.train import TrainConfig
from rlhf_lab.config.tuner import TunerConfig
from rlhf_lab.errors import ConfigError
from rlhf_lab.models.source import check_revision, resolve_source
from rlhf_lab.runtime import fingerprint
from rlhf_lab.training.checkpoints import ResumePoint, check_not_finished, resume_point


@dataclass(frozen=True)
class Run:
    # Each group's node is an instance of the schema its option chose (DPOConfig, LoraTunerConfig, ...).
    algorithm: AlgorithmConfig
    model: ModelConfig
    tuner: TunerConfig
    dataset: DatasetConfig
    distributed: DistributedConfig
    logger: LoggerConfig
    train: TrainConfig
    spec: AlgorithmSpec
    run_dir: Path
    # The resolved config as plain containers (saved, and sent to trackers), every secret masked
    # (config/secrets.py).
    resolved: dict
    # Which option of each group was chosen (algorithm: dpo, model: smollm2_135m, ...).
    choices: dict = field(default_factory=dict)
    # The job's command-line overrides as typed, literal credentials masked (what distinguishes it inside a sweep).
    overrides: tuple[str, ...] = ()
    # The sweep directory when this run is one job of a multirun.
    sweep_dir: Path | None = None
    # The checkpoint training continues from (train.resume), found before anything loads.
    resume: ResumePoint = field(default_factory=ResumePoint)
    # (place in resolved, real value) of each masked secret: for the worker processes this one starts only.
    secrets: tuple = field(default=(), repr=False, compare=False)

    @property
    def world_size(self) -> int:
        return self.distributed.nproc_per_node * self.distributed.nnodes

    @property
    def effective_batch_size(self) -> int:
        return self.train.per_device_train_batch_size * self.train.gradient_accumulation_steps * self.world_size

    @property
    def name(self) -> str:
        """Human name of the run: algorithm-model, plus the overrides that make it unique in a sweep."""
        base = f"{self.choices.get('algorithm', self.algorithm.name)}-{self.choices.get('model', 'model')}"
        return base + ("," + ",".join(self.overrides) if self.overrides else "")


def check_run_dir_setting(value: str) -> None:
    """hydra.run.dir as given: empty (an unset shell variable) or '.' would put a run among the user's files."""
    if str(value).strip() in ("", ".", "./"):
        raise ConfigError(
            "hydra.run.dir",
            f"is {str(value)!r}, the current directory: a run would write its files among yours and the next run "
            "would resume from them; give a directory of its own, or leave it out",
        )


def _non_finite(value, key: str):
    """The first key under value holding a NaN or infinite number (no setting means one), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return key, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{key}.{k}" if isinstance(value, dict) else f"{key}[{k}]")
        if found:
            return found
    return None


def _group_object(cfg: DictConfig, group: str):
    try:
        found = _non_finite(OmegaConf.to_container(cfg[group], resolve=True), group)
    except OmegaConfBaseException:
        found = None  # reported below, with the group's other problems
    if found:
        raise ConfigError(found[0], f"must be a finite number, got {found[1]}")
    try:
        return OmegaConf.to_object(cfg[group])
    except ConfigError as e:
        raise e.under(group) from None
    except MissingMandatoryValue as e:
        key = f"{group}.{e.full_key}" if e.full_key and not e.full_key.startswith(group) else (e.full_key or group)
        raise ConfigError(key, "is required but has no value; set it on the command line") from None
    except OmegaConfBaseException as e:
        raise ConfigError(group, str(e).splitlines()[0]) from None


def _check_launcher_world(distributed) -> None:
    """Under torchrun (or another launcher) the process count is the launcher's; the config must say the same,
    since batch sizes and checks are computed from it."""
    from rlhf_lab.runtime.ranks import under_launcher, world_size

    if under_launcher() and world_size() != distributed.world_size:
        raise ConfigError(
            "distributed",
            f"the launcher started {world_size()} processes but distributed={distributed.backend} has nproc_per_node "
            f"x nnodes = {distributed.world_size}; choose a multi-process option (ddp, zero2, zero3, fsdp) and set "
            "distributed.nproc_per_node / distributed.nnodes to match, or let rlhf_lab start the processes itself "
            "(if no launcher started this command, unset WORLD_SIZE and LOCAL_RANK, left from an earlier job)",
        )


def _check_engine_installed(distributed, choices: dict | None) -> None:
    """DeepSpeed is an extra: without it a ZeRO run would fail in its workers, after the model loaded."""
    if distributed.backend == "deepspeed" and not installed("deepspeed"):
        option = (choices or {}).get("distributed") or distributed.backend
        raise ConfigError(
            None, missing_message("deepspeed", f"distributed={option}") + " (or choose distributed=ddp or fsdp)"
        )


def _check_data_settings(parts: dict, spec: AlgorithmSpec) -> None:
    """dataset settings that another group's settings would make do nothing."""
    dataset, algorithm = parts["dataset"], parts["algorithm"]
    why = algorithm.lazy_blocker()
    if dataset.lazy_tokenize and why:
        raise ConfigError("dataset.lazy_tokenize", f"cannot be true: {why}; leave it null (or false)")
    if dataset.truncation == "right" and spec.truncation != "right":
        raise ConfigError(
            "dataset.truncation",
            f"right cannot apply to algorithm={spec.name}: a cut answer cannot be "
            f"scored, so such rows are deleted; use {spec.truncation} or error",
        )


def _check_extra_models(algorithm: AlgorithmConfig) -> None:
    """Each extra model can be found, and its own revision and trust_remote_code apply to a model that is loaded."""
    paths = algorithm.model_paths()
    for key in algorithm.extra_models:
        revision, trust = algorithm.model_pins(key)
        if key not in paths and (revision is not None or trust):
            setting = f"{key}_revision" if revision is not None else f"{key}_trust_remote_code"
            raise ConfigError(
                f"algorithm.{setting}",
                f"would do nothing: algorithm.{key} is not set; set algorithm.{key} too, or leave this unset",
            )
    for key, path in paths.items():
        source = resolve_source(path, key=f"algorithm.{key}")
        check_revision(source, algorithm.model_pins(key)[0], f"algorithm.{key}_revision")


def build_run(
    cfg: DictConfig,
    run_dir: Path,
    choices: dict | None = None,
    overrides: tuple[str, ...] = (),
    sweep_dir: Path | None = None,
    check_dir: bool = True,
    secret_places: tuple = (),
) -> Run:
    """Validate every group, then the rules that span groups; raise ConfigError naming the key.

    check_dir: whether the run directory must hold nothing or this same run, and the chosen engine is installed (the
    process that starts the run checks; the processes it starts, which see its first files, do not, nor do plan and
    eval, which read a run's config without running it). secret_places: where the launching process found secrets (a
    worker's config, resolved already, no longer shows which values came from the environment)."""
    check_selectors(tuple(overrides))
    parts = {
        g: _group_object(cfg, g) for g in ("algorithm", "model", "tuner", "dataset", "distributed", "logger", "train")
    }
    check_known_keys(cfg, parts)
    spec = get_spec(parts["algorithm"].name)
    if parts["distributed"].backend not in spec.distributed:
        raise ConfigError(
            "distributed",
            f"{spec.name} runs with distributed={'/'.join(spec.distributed)}, not {parts['distributed'].backend}",
        )
    _check_launcher_world(parts["distributed"])
    if check_dir:
        _check_engine_installed(parts["distributed"], choices)
    check_revision(resolve_source(parts["model"].name_or_path), parts["model"].revision, "model.revision")
    parts["algorithm"].check_run(parts)
    parts["tuner"].check_algorithm(parts["algorithm"])
    parts["dataset"].check_algorithm(parts["algorithm"].name)
    _check_data_settings(parts, spec)
    _check_extra_models(parts["algorithm"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    # Settings whose null means "the default for the other settings" (GRPO's scale_rewards and kl_in_reward per
    # advantage_estimator) are recorded as they were resolved: the summary, trackers and fingerprint show what ran.
    for group, part in parts.items():
        section = resolved.get(group)
        if isinstance(section, dict):
            for key, value in section.items():
                if value is None and getattr(part, key, None) is not None:
                    section[key] = getattr(part, key)
    # Records get the masked copy; the typed parts above keep the real values for the code that uses them.
    secrets = find_secrets(cfg, resolved, secret_places)
    resolved = masked(resolved, secrets, OmegaConf.to_container(cfg, resolve=False))
    train = parts["train"]
    if check_dir and train.resume != "never":
        fingerprint.check_same_run(Path(run_dir), resolved)
    engine = None if train.trust_checkpoint else parts["distributed"].unpickles_checkpoints
    resume = resume_point(Path(run_dir), train.resume, unpickled_by=engine if check_dir else None)
    check_not_finished(resume, train.max_steps, train.num_train_epochs)
    return Run(
        **parts,
        spec=spec,
        run_dir=Path(run_dir),
        resolved=resolved,
        choices=dict(choices or {}),
        overrides=mask_overrides(overrides),
        sweep_dir=sweep_dir,
        resume=resume,
        secrets=tuple(secrets),
    )
