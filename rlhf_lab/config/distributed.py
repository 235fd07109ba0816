"""How many processes and which engine: one process, DDP, DeepSpeed ZeRO, or FSDP2 (through accelerate).

The processes are started by torch.distributed's own launcher (runtime/launch.py); the engines are the ones
transformers' Trainer drives (algorithms/common.py turns these settings into its arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from rlhf_lab.config.checks import one_of, positive
from rlhf_lab.config.fields import doc
from rlhf_lab.errors import ConfigError

# Engines that leave every process the whole model, in the dtype it was loaded in (DeepSpeed and FSDP shard it and
# manage its dtype themselves).
WHOLE_MODEL_BACKENDS = ("single", "ddp")


@dataclass
class DistributedConfig:
    backend: str = doc(MISSING, "Engine: single, ddp, deepspeed or fsdp (set by the option).")
    nproc_per_node: int = doc(1, "Processes per node (one per GPU; on CPU each process gets its share of the cores).")
    nnodes: int = doc(1, "Number of nodes (machines) in the run.")
    node_rank: int = doc(0, "This node's index (0..nnodes-1), for multi-node runs.")
    master_addr: str = doc("127.0.0.1", "Address where node 0 listens, for multi-node runs.")
    master_port: int = doc(29500, "Port where node 0 listens.")

    def __post_init__(self) -> None:
        positive("nproc_per_node", self.nproc_per_node)
        positive("nnodes", self.nnodes)
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError("node_rank", f"must be in [0, nnodes={self.nnodes}), got {self.node_rank}")
        if not 0 < self.master_port < 65536:
            raise ConfigError("master_port", f"must be a TCP port (1-65535), got {self.master_port}")

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def unpickles_checkpoints(self) -> str | None:
        """The engine that reads a checkpoint to resume with pickle (None: read weights-only)."""
        return None


@dataclass
class SingleConfig(DistributedConfig):
    backend: str = "single"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nproc_per_node != 1 or self.nnodes != 1:
            raise ConfigError(
                "nproc_per_node",
                "distributed=single runs one process; use distributed=ddp (or zero2, zero3, fsdp) for more",
            )


@dataclass
class DDPConfig(DistributedConfig):
    """Data parallel: every process holds the whole model; gradients are averaged (torch DDP)."""

    backend: str = "ddp"
    nproc_per_node: int = 2
    # It costs an extra pass over the graph.
    find_unused_parameters: bool = doc(False, "Allow steps in which some parameters get no gradient.")
    bucket_cap_mb: int = doc(25, "Size in MB of the gradient buckets reduced together.")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive("bucket_cap_mb", self.bucket_cap_mb)
        if self.world_size < 2:
            raise ConfigError(
                "nproc_per_node",
                "distributed=ddp with one process in all is distributed=single (DDP has nothing to average); use "
                "distributed=single, or 2 or more processes",
            )


@dataclass
class DeepSpeedConfig(DistributedConfig):
    """DeepSpeed ZeRO: optimizer state (stage 1), gradients (2) and parameters (3) sharded over the processes.

    The DeepSpeed JSON is generated from these fields; batch sizes, learning rate, precision and gradient
    clipping are filled in from the train node by the trainer ("auto")."""

    backend: str = "deepspeed"
    nproc_per_node: int = 2
    zero_stage: int = doc(2, "ZeRO stage: 0 off, 1 shards optimizer state, 2 also gradients, 3 also parameters.")
    offload_optimizer: str = doc("none", "Where optimizer state lives between uses: none (device) or cpu.")
    offload_param: str = doc("none", "Where parameters live between uses: none (device) or cpu (zero_stage=3).")
    overlap_comm: bool = doc(False, "Overlap the reduction of gradients with the backward computation.")
    contiguous_gradients: bool = doc(True, "Copy gradients into one contiguous buffer as they are produced.")
    reduce_bucket_size: int = doc(500_000_000, "Elements per reduce bucket.")
    allgather_bucket_size: int = doc(500_000_000, "Elements per all-gather bucket (stages 1 and 2).")
    gather_16bit_weights_on_model_save: bool = doc(
        True, "ZeRO-3: gather the full 16-bit weights when saving, so the saved model loads without DeepSpeed."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("zero_stage", self.zero_stage, (0, 1, 2, 3))
        one_of("offload_optimizer", self.offload_optimizer, ("none", "cpu"))
        one_of("offload_param", self.offload_param, ("none", "cpu"))
        if self.offload_param != "none" and self.zero_stage != 3:
            raise ConfigError("offload_param", f"parameter offload needs zero_stage=3, got {self.zero_stage}")
        if self.offload_optimizer != "none" and self.zero_stage == 0:
            raise ConfigError("offload_optimizer", "optimizer offload needs zero_stage >= 1")
        positive("reduce_bucket_size", self.reduce_bucket_size)
        positive("allgather_bucket_size", self.allgather_bucket_size)

    @property
    def unpickles_checkpoints(self) -> str | None:
        return "DeepSpeed"

    def deepspeed_json(self) -> dict[str, Any]:
        zero: dict[str, Any] = {
            "stage": self.zero_stage,
            "overlap_comm": self.overlap_comm,
            "contiguous_gradients": self.contiguous_gradients,
            "reduce_bucket_size": self.reduce_bucket_size,
        }
        if self.zero_stage <= 2:
            zero["allgather_bucket_size"] = self.allgather_bucket_size
        if self.zero_stage == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = self.gather_16bit_weights_on_model_save
        if self.offload_optimizer != "none":
            zero["offload_optimizer"] = {"device": self.offload_optimizer, "pin_memory": True}
        if self.offload_param != "none":
            zero["offload_param"] = {"device": self.offload_param, "pin_memory": True}
        return {
            "zero_optimization": zero,
            "train_micro_batch_size_per_gpu": "auto",
            "train_batch_size": "auto",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
            "bf16": {"enabled": "auto"},
            "zero_allow_untested_optimizer": True,
        }


@dataclass
class FSDPConfig(DistributedConfig):
    """Fully sharded data parallel (FSDP2, through accelerate): parameters, gradients and optimizer state sharded,
    each decoder layer wrapped as one unit."""

    backend: str = "fsdp"
    nproc_per_node: int = 2
    reshard_after_forward: bool = doc(
        True, "Free each layer's gathered parameters after its forward (less memory, one more all-gather in backward)."
    )
    cpu_offload: bool = doc(False, "Keep parameters, gradients and optimizer state on the CPU between uses.")
    full_state_dict: bool = doc(True, "Save a full (unsharded) state dict, loadable without FSDP; false = sharded.")

    @property
    def unpickles_checkpoints(self) -> str | None:
        # A full state dict is read weights-only; torch.distributed.checkpoint unpickles a sharded one's metadata.
        return None if self.full_state_dict else "torch.distributed.checkpoint (sharded FSDP)"

    def fsdp_config(self) -> dict[str, Any]:
        return {
            "version": 2,
            "reshard_after_forward": self.reshard_after_forward,
            "cpu_offload": self.cpu_offload,
            "cpu_ram_efficient_loading": False,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "state_dict_type": "FULL_STATE_DICT" if self.full_state_dict else "SHARDED_STATE_DICT",
        }
