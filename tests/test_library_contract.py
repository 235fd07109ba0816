"""The private and internal surface of TRL, transformers, peft, accelerate and DeepSpeed that rlhf_lab relies on.

Each test is named by the library object it checks (test_contract[<object>]) and fails, naming the rlhf_lab file that
relies on it, when an upgrade renames, removes or reshapes it. Nothing is loaded or trained: signatures, class and
function sources, and a few config objects are inspected.

Inventory (library object -- rlhf_lab file -- how it is used); paths are under rlhf_lab/:

TRL
  trl.GRPOTrainer._calculate_rewards -- algorithms/grpo/trainer.py -- override + super call + call from
      score_answers; (inputs, prompts, completions, completion_ids_list) positional; result gathered over processes
  trl.GRPOTrainer._calculate_rewards[reward_kwargs] -- rewards/wrap.py -- read: the internal reward kwargs
      (log_extra, log_metric, environments) are stripped before user rewards run
  trl.GRPOTrainer._generate_single_turn -- algorithms/grpo/trainer.py -- override (*args, **kwargs passed
      through); assumes TRL generates with self.model_wrapped, swapped for the generation copy during the call
  trl.GRPOTrainer._generate_and_score_completions -- algorithms/grpo/trainer.py -- override + super calls
      (inputs); its batch keys -- algorithms/grpo/dynamic_sampling.py -- read (padded, selected, recomputed)
  trl.GRPOTrainer._compute_loss -- algorithms/grpo/trainer.py -- override + super call (model, inputs); its KL
      term reads self.beta, set to 0 during the call when the KL penalty is in the reward (kl_in_reward)
  trl.GRPOTrainer._get_per_token_logps_and_entropies -- algorithms/grpo/trainer.py -- call (model, input_ids,
      attention_mask, logits_to_keep, batch_size=) -> (logps, entropies, ...) for kl_in_reward
  trl.GRPOTrainer.beta / num_generations_eval -- algorithms/grpo/trainer.py -- read (beta also written)
  trl.GRPOTrainer.environments -- algorithms/grpo/trainer.py -- write (score_answers hands the held-out answers'
      environments to _calculate_rewards, whose environment rewards read it)
  trl.chat_template_utils.qwen3_template -- models/tool_template.py -- read (the <tool_call> JSON response parser
      set on ChatML tokenizers given rlhf_lab's tool template)
  trl.chat_template_utils.supports_tool_calling / add_response_schema -- models/tool_template.py -- call (tokenizer)
  trl.chat_template_utils.parse_response -- evaluation/tool_use.py -- call (tokenizer, ids, prefix=, tools=)
  trl.trainer.utils.nanstd -- algorithms/grpo/advantages.py -- call (tensor, dim=); unbiased, NaN-aware
  trl.GRPOTrainer._metrics -- algorithms/grpo/trainer.py -- write (_metrics["train"][name].append)
  trl.GRPOTrainer.reward_weights -- algorithms/grpo/trainer.py -- read (tensor)
  trl.GRPOTrainer.num_generations -- algorithms/grpo/trainer.py -- read
  trl.GRPOTrainer.reward_func_names -- evaluation/online.py -- read
  trl.DPOTrainer._prepare_dataset -- algorithms/lazy_rows.py (preference/dpo.py) -- override + super calls
  trl.KTOTrainer._prepare_dataset -- algorithms/lazy_rows.py (preference/kto.py) -- override + super calls
  trl.RewardTrainer._prepare_dataset -- algorithms/lazy_rows.py (preference/rm.py); vision/trainers.py --
      override + super calls
  trl.RewardTrainer.compute_loss -- vision/trainers.py -- override + positional super call
  trl.DPOTrainer.ref_model -- patches/shared_prompt.py -- read
  trl.experimental.gkd.GKDTrainer.generate_on_policy_outputs -- algorithms/gkd/trainer.py -- override as a
      method; called on the class as a staticmethod (model, inputs, generation_config)
  trl.experimental.gkd.GKDTrainer.training_step -- algorithms/gkd/trainer.py -- override + super call
  trl.experimental.gkd.GKDTrainer.compute_loss -- algorithms/gkd/trainer.py -- override + super call with
      return_outputs=True, reads (loss, outputs).logits
  trl.experimental.gkd.GKDTrainer.generalized_jsd_loss -- evaluation/distill.py -- call on the class (static),
      beta=, reduction="none"
  trl.experimental.gkd.GKDTrainer.teacher_model -- algorithms/gkd/trainer.py; evaluation/distill.py -- read
  trl.experimental.cpo.CPOTrainer.concatenated_forward -- vision/trainers.py -- override, 5-tuple
  trl.experimental.cpo.CPOTrainer.tokenize_row -- vision/trainers.py -- override (feature, model=None)
  trl.experimental.cpo.CPOTrainer.loss_type -- vision/trainers.py -- read
  trl.experimental.cpo.CPOTrainer.cpo_alpha -- vision/trainers.py -- read
  trl.experimental.orpo.ORPOTrainer.concatenated_forward -- vision/trainers.py -- override, 5-tuple
  trl.experimental.orpo.ORPOTrainer.tokenize_row -- vision/trainers.py -- override
  trl.experimental.cpo / .orpo / .gkd -- algorithms/preference/cpo.py, orpo.py, gkd/build.py, gkd/trainer.py,
      vision/trainers.py; evaluation/distill.py -- import (experimental namespace)
  trl.trainer.utils._use_triton -- patches/scored_positions.py -- patch (module attribute replaced
      process-wide, read back as .original)
  trl.trainer.utils.add_fused_lm_head -- patches/shared_prompt.py -- wraps the forward it installs and
      calls it with fused_lm_head=, labels=, shift_labels=
  trl.trainer.utils.FusedCausalLMOutput -- patches/shared_prompt.py -- import from internal module, construct
  trl.trainer.dpo_trainer.DataCollatorForVisionPreference -- vision/batches.py -- import from internal
      module, construct (processor=, max_length=)
  trl.trainer.kto_trainer.DataCollatorForVisionUnpairedPreference -- vision/batches.py -- same, calculate_kl=
transformers
  transformers.Trainer._save_checkpoint (and each TRL trainer's) -- training/pipeline.py -- call (model, None)
      when a reward server stays down; training/checkpoints.py -- patch on the
      instance, original called (model, trial); algorithms/ppo/trainer.py -- call
  transformers.Trainer._get_output_dir -- training/checkpoints.py -- patch (shadowed on the instance during a save)
  transformers.Trainer._load_from_checkpoint -- algorithms/ppo/trainer.py -- call (checkpoint, model=)
  transformers.Trainer._load_optimizer_and_scheduler -- algorithms/ppo/trainer.py -- call (checkpoint)
  transformers.Trainer._load_rng_state -- algorithms/ppo/trainer.py -- call (checkpoint)
  transformers.Trainer._prepare_for_training -- algorithms/ppo/trainer.py -- call (max_steps, None, None) ->
      (model, dataloader); creates optimizer and scheduler
  transformers.Trainer.save_model -- algorithms/ppo/trainer.py -- override (output_dir, _internal_call)
  transformers.Trainer.train -- algorithms/ppo/trainer.py -- override (resume_from_checkpoint, trial, **kwargs)
  transformers.Trainer.model_wrapped -- algorithms/ppo/trainer.py; algorithms/grpo/trainer.py -- read/write
  transformers.Trainer.callback_handler -- algorithms/ppo/trainer.py -- read
  transformers.Trainer.control -- algorithms/ppo/trainer.py -- read/write
  transformers.trainer_callback.CallbackHandler.callbacks -- algorithms/ppo/trainer.py -- read
  transformers.trainer_callback.CallbackHandler.on_train_begin / on_step_begin / on_step_end / on_save /
      on_train_end -- algorithms/ppo/trainer.py -- call (args, state, control)
  transformers.trainer_callback.ExportableState -- algorithms/ppo/trainer.py -- import from submodule
  transformers.TrainerState -- algorithms/ppo/trainer.py -- construct with keywords, write fields
  transformers.TrainerState.load_from_json -- algorithms/ppo/trainer.py -- call (classmethod)
  transformers.TrainerState.compute_steps -- training/resume_intervals.py -- call (args, max_steps)
  transformers.trainer_utils.TrainOutput -- algorithms/ppo/trainer.py -- construct positionally;
      training/pipeline.py -- read training_loss
  transformers.trainer_utils.PREFIX_CHECKPOINT_DIR -- training/checkpoints.py -- mirror ("checkpoint-")
  transformers.trainer.TRAINER_STATE_NAME -- training/checkpoints.py; algorithms/ppo/trainer.py -- mirror
  transformers.PretrainedConfig._attn_implementation -- patches/shared_prompt.py -- read
  transformers.AutoModelForImageTextToText._model_mapping -- vision/models.py -- read (indexed by config class)
  transformers.modeling_layers.GenericForSequenceClassification -- vision/models.py -- import from internal
      module, mixed into a new class; algorithms/ppo/models.py -- read base_model_prefix backbone and .score
  transformers.modeling_utils.PreTrainedModel -- vision/models.py -- import from submodule
  transformers.trainer_utils.SchedulerType -- config/train.py -- mirror (LR_SCHEDULERS)
  transformers.TrainingArguments._process_fsdp_args -- config/distributed.py (algorithms/common.py) --
      reads the fsdp_config keys rlhf_lab writes (an unknown key is silently ignored)
  transformers.integrations.deepspeed.HfTrainerDeepSpeedConfig.trainer_config_process -- config/distributed.py
      -- fills the "auto" values rlhf_lab writes
peft
  peft.tuners.lora.LoraLayer -- algorithms/grpo/generation_copy.py; models/frozen_base.py -- import, isinstance
  peft.tuners.lora.LoraLayer.get_base_layer -- algorithms/grpo/generation_copy.py; models/frozen_base.py -- call
  peft.tuners.lora.Linear.get_delta_weight -- algorithms/grpo/generation_copy.py -- call (adapter)
DeepSpeed
  deepspeed.runtime.zero.config.DeepSpeedZeroConfig -- config/distributed.py -- the zero_optimization block
  deepspeed.runtime.constants -- config/distributed.py -- top-level config keys
accelerate
  (none private: rlhf_lab uses Accelerator.unwrap_model, autocast, no_sync, clip_grad_norm_, backward, gather,
  process_index and device, all public)
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import textwrap
import types

import pytest

LIBRARIES = ("trl", "transformers", "peft", "accelerate", "deepspeed")

# -- helpers: each raises AssertionError naming `where` (the rlhf_lab file that relies on the object) ---------------


def load(path: str, where: str):
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name.startswith(e.name):
                continue  # not a module (an attribute), or a missing module on the path: try a shorter prefix
            raise AssertionError(f"{path}: importing {module_name} failed ({e}): {where}") from e
        except ImportError as e:
            raise AssertionError(f"{path}: importing {module_name} failed ({e}): {where}") from e
        break
    else:
        raise AssertionError(f"{path}: cannot import {parts[0]}: {where}")
    for attr in parts[i:]:
        assert hasattr(obj, attr), f"{path}: {getattr(obj, '__name__', obj)} has no {attr!r}: {where}"
        obj = getattr(obj, attr)
    return obj


def params(obj) -> list[str]:
    return list(inspect.signature(obj).parameters)


def expect_params(obj, expected: list[str], label: str, where: str, prefix: bool = False) -> None:
    """obj takes exactly `expected` (or starts with it, with prefix=True), by name and in order."""
    got = params(obj)
    shown = got[: len(expected)] if prefix else got
    assert shown == expected, (
        f"{label} takes ({', '.join(got)}), rlhf_lab expects ({', '.join(expected)}{', ...' if prefix else ''}): "
        f"{where}"
    )


def kind(cls: type, name: str) -> str | None:
    """How `name` is defined on cls or its bases: 'function', 'staticmethod', 'classmethod', 'property', ..."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return type(vars(klass)[name]).__name__
    return None


def expect_kind(cls: type, name: str, expected: str, label: str, where: str) -> None:
    got = kind(cls, name)
    assert got == expected, f"{label} is a {got}, rlhf_lab uses it as a {expected}: {where}"


@functools.cache
def tree(obj) -> ast.AST:
    """The parsed source of a library function or class."""
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def is_self(node) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def self_calls(obj, name: str) -> list[ast.Call]:
    """Calls self.<name>(...) in the source of obj."""
    return [
        n
        for n in ast.walk(tree(obj))
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == name
        and is_self(n.func.value)
    ]


def super_calls(obj, name: str) -> list[ast.Call]:
    """Calls super().<name>(...) in the source of obj."""
    return [
        n
        for n in ast.walk(tree(obj))
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == name
        and isinstance(n.func.value, ast.Call)
        and isinstance(n.func.value.func, ast.Name)
        and n.func.value.func.id == "super"
    ]


def reads_self(obj, attr: str) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == attr and is_self(n.value) for n in ast.walk(tree(obj)))


def library_classes(cls: type):
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in LIBRARIES:
            yield klass


def self_assignments(cls: type, attr: str) -> list[ast.AST]:
    """The values assigned to self.<attr> in the library classes of cls's MRO (nearest class first)."""
    for klass in library_classes(cls):
        values = []
        for n in ast.walk(tree(klass)):
            if isinstance(n, ast.Assign):
                targets = [t for target in n.targets for t in ast.walk(target)]
            elif isinstance(n, (ast.AnnAssign, ast.AugAssign)):
                targets = [n.target]
            else:
                continue
            if any(isinstance(t, ast.Attribute) and t.attr == attr and is_self(t.value) for t in targets):
                values.append(n.value)
        if values:
            return values
    return []


def expect_attribute(cls: type, attr: str, label: str, where: str) -> list[ast.AST]:
    values = self_assignments(cls, attr)
    assert values, f"{label}: no class of {cls.__name__}'s hierarchy sets self.{attr} any more: {where}"
    return values


def string_constants(obj) -> set[str]:
    return {n.value for n in ast.walk(tree(obj)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def nested_code(func, name: str) -> types.CodeType | None:
    for const in func.__code__.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == name:
            return const
    return None


# -- the contracts, one per library object -------------------------------------------------------------------------

CONTRACTS: dict = {}


def contract(name: str):
    def register(check):
        CONTRACTS[name] = functools.partial(check, name)  # the check gets its object's name as `label`
        return check

    return register


# TRL: GRPO --------------------------------------------------------------------------------------------------------

GRPO_WHERE = "rlhf_lab/algorithms/grpo/trainer.py overrides it"


@contract("trl.GRPOTrainer._calculate_rewards")
def _(label):
    where = "rlhf_lab/algorithms/grpo/trainer.py overrides it, calls it from score_answers and slices its gathered rows"
    cls = load("trl.GRPOTrainer", where)
    expect_kind(cls, "_calculate_rewards", "function", label, where)
    expect_params(
        cls._calculate_rewards, ["self", "inputs", "prompts", "completions", "completion_ids_list"], label, where
    )
    calls = self_calls(cls._generate_and_score_completions, "_calculate_rewards")
    assert calls and all(len(c.args) == 4 for c in calls), (
        f"{label} is no longer called by _generate_and_score_completions with 4 arguments, so the override's "
        f"_last_rewards goes stale: {where}"
    )
    gathers = [
        n
        for n in ast.walk(tree(cls._calculate_rewards))
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "gather"
    ]
    assert gathers, (
        f"{label} no longer gathers the rewards over processes (the override slices its process's rows): {where}"
    )


@contract("trl.GRPOTrainer._calculate_rewards[reward_kwargs]")
def _(label):
    where = "rlhf_lab/rewards/wrap.py strips TRL's internal reward kwargs (log_extra, log_metric, environments)"
    cls = load("trl.GRPOTrainer", where)
    internal = {
        n.slice.value
        for n in ast.walk(tree(cls._calculate_rewards))
        if isinstance(n, ast.Subscript)
        and isinstance(n.ctx, ast.Store)
        and getattr(n.value, "id", None) == "reward_kwargs"
        and isinstance(n.slice, ast.Constant)
    }
    expected = {"trainer_state", "log_extra", "log_metric", "environments"}
    assert internal == expected, (
        f"{label}: TRL now adds {sorted(internal)} to the reward kwargs, not {sorted(expected)}: {where}"
    )


@contract("trl.GRPOTrainer._generate_single_turn")
def _(label):
    where = GRPO_WHERE + " (eval mode; the generation copy swapped in as self.model_wrapped)"
    cls = load("trl.GRPOTrainer", where)
    expect_kind(cls, "_generate_single_turn", "function", label, where)
    callers = [
        name for name, f in vars(cls).items() if inspect.isfunction(f) and self_calls(f, "_generate_single_turn")
    ]
    assert callers, f"{label} is no longer called by GRPOTrainer's generation, so the override never runs: {where}"
    assert reads_self(cls._generate_single_turn, "model_wrapped"), (
        f"{label} no longer generates with self.model_wrapped, so the generation copy is not used: {where}"
    )


# Multimodal batch keys dynamic sampling refuses by name (algorithms/grpo/dynamic_sampling.py unsupported_keys).
REFUSED_BATCH_KEYS = {
    "pixel_values",
    "image_grid_thw",
    "pixel_attention_mask",
    "spatial_shapes",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
    "num_images",
    "num_tiles",
}


@contract("trl.GRPOTrainer._generate_and_score_completions")
def _(label):
    where = GRPO_WHERE + "; rlhf_lab/algorithms/grpo/dynamic_sampling.py pads and selects the batch it returns by key"
    cls = load("trl.GRPOTrainer", where)
    expect_kind(cls, "_generate_and_score_completions", "function", label, where)
    expect_params(cls._generate_and_score_completions, ["self", "inputs"], label, where)
    callers = [
        name
        for name, f in vars(cls).items()
        if inspect.isfunction(f) and self_calls(f, "_generate_and_score_completions")
    ]
    assert callers, f"{label} is no longer called by GRPOTrainer, so the override never runs: {where}"
    keys = set()
    for n in ast.walk(tree(cls._generate_and_score_completions)):
        if (
            isinstance(n, ast.Assign)
            and any(getattr(t, "id", None) == "output" for t in n.targets)
            and isinstance(n.value, ast.Dict)
        ):
            keys |= {k.value for k in n.value.keys if isinstance(k, ast.Constant)}
        if isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store) and getattr(n.value, "id", None) == "output":
            keys.add(n.slice.value if isinstance(n.slice, ast.Constant) else ast.unparse(n.slice))
    from rlhf_lab.algorithms.grpo.dynamic_sampling import SUPPORTED

    missing = {"completion_mask", "advantages", "num_items_in_batch"} - keys
    assert not missing, f"{label}'s batch lacks {sorted(missing)}: {where}"
    unknown = keys - SUPPORTED - REFUSED_BATCH_KEYS
    assert not unknown, f"{label}'s batch has new keys {sorted(unknown)} that dynamic sampling does not know: {where}"


@contract("trl.GRPOTrainer._compute_loss")
def _(label):
    where = GRPO_WHERE + " (kl_in_reward sets self.beta to 0 during the call to drop its KL term)"
    cls = load("trl.GRPOTrainer", where)
    expect_kind(cls, "_compute_loss", "function", label, where)
    expect_params(cls._compute_loss, ["self", "model", "inputs"], label, where)
    assert self_calls(cls.compute_loss, "_compute_loss"), f"{label} is no longer called by compute_loss: {where}"
    assert reads_self(cls._compute_loss, "beta"), f"{label} no longer weighs its KL term by self.beta: {where}"


@contract("trl.GRPOTrainer._get_per_token_logps_and_entropies")
def _(label):
    where = "rlhf_lab/algorithms/grpo/trainer.py calls it for each answer's KL (kl_in_reward)"
    cls = load("trl.GRPOTrainer", where)
    expect_params(
        cls._get_per_token_logps_and_entropies,
        ["self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size"],
        label,
        where,
        prefix=True,
    )


@contract("trl.GRPOTrainer._metrics")
def _(label):
    where = "rlhf_lab/algorithms/grpo/trainer.py appends to self._metrics['train'][name]"
    values = expect_attribute(load("trl.GRPOTrainer", where), "_metrics", label, where)
    shown = [ast.unparse(v) for v in values]
    assert any("'train': defaultdict(list)" in s for s in shown), f"{label} is now {shown}: {where}"


for attr, where in {
    "reward_weights": "rlhf_lab/algorithms/grpo/trainer.py weights the rewards with it (a tensor)",
    "num_generations": "rlhf_lab/algorithms/grpo/trainer.py groups answers by it",
    "num_generations_eval": "rlhf_lab/algorithms/grpo/trainer.py groups evaluation answers by it",
    "beta": "rlhf_lab/algorithms/grpo/trainer.py weighs the KL in the reward by it (kl_in_reward)",
    "reward_func_names": "rlhf_lab/evaluation/online.py names the held-out rewards by it",
}.items():

    @contract(f"trl.GRPOTrainer.{attr}")
    def _(label, attr=attr, where=where):
        values = expect_attribute(load("trl.GRPOTrainer", where), attr, label, where)
        if attr == "reward_weights":
            assert all("torch." in ast.unparse(v) for v in values), f"{label} is no longer a tensor: {where}"


# TRL: offline preference trainers ---------------------------------------------------------------------------------

PREPARE_WHERE = (
    "rlhf_lab/algorithms/lazy_rows.py overrides it (per_batch) to skip the index dataset named 'train' "
    "and calls it per batch"
)
for trainer, where in {
    "trl.DPOTrainer": PREPARE_WHERE,
    "trl.KTOTrainer": PREPARE_WHERE,
    "trl.RewardTrainer": PREPARE_WHERE + "; rlhf_lab/vision/trainers.py overrides it",
}.items():

    @contract(f"{trainer}._prepare_dataset")
    def _(label, trainer=trainer, where=where):
        cls = load(trainer, where)
        expect_kind(cls, "_prepare_dataset", "function", label, where)
        expected = ["self", "dataset", "processing_class", "args", "dataset_name"]
        expect_params(cls._prepare_dataset, expected, label, where)
        calls = self_calls(cls.__init__, "_prepare_dataset")
        assert any(len(c.args) == 4 and getattr(c.args[3], "value", None) == "train" for c in calls), (
            f"{trainer}.__init__ no longer prepares the training set with self._prepare_dataset(..., 'train'): {where}"
        )


@contract("trl.RewardTrainer.compute_loss")
def _(label):
    where = "rlhf_lab/vision/trainers.py overrides it and calls super() positionally"
    cls = load("trl.RewardTrainer", where)
    expect_params(cls.compute_loss, ["self", "model", "inputs", "return_outputs", "num_items_in_batch"], label, where)


@contract("trl.DPOTrainer.ref_model")
def _(label):
    where = "rlhf_lab/patches/shared_prompt.py packs the reference model's forwards too"
    expect_attribute(load("trl.DPOTrainer", where), "ref_model", label, where)


# TRL: experimental trainers ---------------------------------------------------------------------------------------

for module, names, where in (
    (
        "trl.experimental.cpo",
        ("CPOConfig", "CPOTrainer"),
        "rlhf_lab/algorithms/preference/cpo.py and vision/trainers.py import it",
    ),
    (
        "trl.experimental.orpo",
        ("ORPOConfig", "ORPOTrainer"),
        "rlhf_lab/algorithms/preference/orpo.py and vision/trainers.py import it",
    ),
    (
        "trl.experimental.gkd",
        ("GKDConfig", "GKDTrainer"),
        "rlhf_lab/algorithms/gkd/build.py, trainer.py and evaluation/distill.py import it",
    ),
):

    @contract(module)
    def _(label, module=module, names=names, where=where):
        for name in names:
            assert isinstance(load(f"{module}.{name}", where), type), f"{label}.{name} is not a class: {where}"


GKD_WHERE = "rlhf_lab/algorithms/gkd/trainer.py overrides it"


@contract("trl.experimental.gkd.GKDTrainer.generate_on_policy_outputs")
def _(label):
    where = GKD_WHERE + " as a method and calls GKDTrainer.generate_on_policy_outputs(model, inputs, generation_config)"
    cls = load("trl.experimental.gkd.GKDTrainer", where)
    expect_kind(cls, "generate_on_policy_outputs", "staticmethod", label, where)
    expect_params(cls.generate_on_policy_outputs, ["model", "inputs", "generation_config"], label, where)
    calls = self_calls(cls.training_step, "generate_on_policy_outputs")
    assert calls and all(len(c.args) == 3 for c in calls), (
        f"GKDTrainer.training_step no longer calls self.generate_on_policy_outputs(model, inputs, config), so the "
        f"batch sources are not counted: {where}"
    )


@contract("trl.experimental.gkd.GKDTrainer.training_step")
def _(label):
    cls = load("trl.experimental.gkd.GKDTrainer", GKD_WHERE)
    expect_params(cls.training_step, ["self", "model", "inputs", "num_items_in_batch"], label, GKD_WHERE)


@contract("trl.experimental.gkd.GKDTrainer.compute_loss")
def _(label):
    where = GKD_WHERE + " and reads (loss, outputs) from super().compute_loss(..., return_outputs=True)"
    cls = load("trl.experimental.gkd.GKDTrainer", where)
    expect_params(cls.compute_loss, ["self", "model", "inputs", "return_outputs", "num_items_in_batch"], label, where)
    pairs = [
        n
        for n in ast.walk(tree(cls.compute_loss))
        if isinstance(n, ast.IfExp)
        and getattr(n.test, "id", None) == "return_outputs"
        and isinstance(n.body, ast.Tuple)
        and len(n.body.elts) == 2
    ]
    assert pairs, f"{label} no longer returns (loss, outputs) when return_outputs is set: {where}"


@contract("trl.experimental.gkd.GKDTrainer.generalized_jsd_loss")
def _(label):
    where = (
        "rlhf_lab/evaluation/distill.py calls GKDTrainer.generalized_jsd_loss(student, teacher, beta=, "
        "reduction='none')"
    )
    cls = load("trl.experimental.gkd.GKDTrainer", where)
    expect_kind(cls, "generalized_jsd_loss", "staticmethod", label, where)
    expect_params(cls.generalized_jsd_loss, ["student_logits", "teacher_logits"], label, where, prefix=True)
    missing = {"beta", "reduction"} - set(params(cls.generalized_jsd_loss))
    assert not missing, f"{label} takes no {sorted(missing)}: {where}"


@contract("trl.experimental.gkd.GKDTrainer.teacher_model")
def _(label):
    where = "rlhf_lab/algorithms/gkd/trainer.py and evaluation/distill.py read trainer.teacher_model"
    expect_attribute(load("trl.experimental.gkd.GKDTrainer", where), "teacher_model", label, where)


VISION_WHERE = "rlhf_lab/vision/trainers.py overrides it"
for trainer in ("trl.experimental.cpo.CPOTrainer", "trl.experimental.orpo.ORPOTrainer"):

    @contract(f"{trainer}.concatenated_forward")
    def _(label, trainer=trainer):
        where = VISION_WHERE + " and returns (chosen_logps, rejected_logps, chosen_logits, rejected_logits, nll)"
        cls = load(trainer, where)
        expect_kind(cls, "concatenated_forward", "function", label, where)
        expect_params(cls.concatenated_forward, ["self", "model", "batch"], label, where)
        sizes = {
            len(n.value.elts)
            for n in ast.walk(tree(cls.concatenated_forward))
            if isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple)
        }
        assert 5 in sizes, f"{label} returns tuples of {sorted(sizes)} values, not the 5 the override returns: {where}"
        assert self_calls(cls.get_batch_loss_metrics, "concatenated_forward"), (
            f"{trainer}.get_batch_loss_metrics no longer calls self.concatenated_forward: {where}"
        )

    @contract(f"{trainer}.tokenize_row")
    def _(label, trainer=trainer):
        where = VISION_WHERE + " (the index dataset needs no tokenizing)"
        cls = load(trainer, where)
        expect_kind(cls, "tokenize_row", "function", label, where)
        expect_params(cls.tokenize_row, ["self", "feature", "model"], label, where)
        assert reads_self(cls.__init__, "tokenize_row"), f"{trainer}.__init__ no longer maps self.tokenize_row: {where}"


for attr in ("loss_type", "cpo_alpha"):

    @contract(f"trl.experimental.cpo.CPOTrainer.{attr}")
    def _(label, attr=attr):
        where = f"rlhf_lab/vision/trainers.py reads self.{attr}"
        expect_attribute(load("trl.experimental.cpo.CPOTrainer", where), attr, label, where)


# TRL: the fused LM head and internal modules ----------------------------------------------------------------------


@contract("trl.GRPOTrainer.environments")
def _(label):
    where = "rlhf_lab/algorithms/grpo/trainer.py sets it for the held-out answers' environment rewards"
    cls = load("trl.GRPOTrainer", where)
    expect_attribute(cls, "environments", label, where)
    assert reads_self(cls._calculate_rewards, "environments"), (
        f"{label} is no longer what _calculate_rewards hands the environment rewards: {where}"
    )


@contract("trl.trainer.utils.nanstd")
def _(label):
    where = "rlhf_lab/algorithms/grpo/advantages.py scales advantages by it (the std TRL's GRPO uses)"
    import torch

    nanstd = load("trl.trainer.utils.nanstd", where)
    expect_params(nanstd, ["tensor", "dim", "keepdim"], label, where)
    got = nanstd(torch.tensor([[1.0, float("nan"), 3.0]]), dim=1)
    assert torch.allclose(got, torch.tensor([2.0**0.5])), f"{label} is no longer unbiased and NaN-aware: {where}"


@contract("trl.chat_template_utils.qwen3_template")
def _(label):
    where = "rlhf_lab/models/tool_template.py reads tool calls in the <tool_call> JSON form with it"
    template = load("trl.chat_template_utils.qwen3_template", where)
    assert isinstance(template, dict) and template.get("start_anchor") == "<|im_start|>assistant\n", (
        f"{label} no longer anchors on ChatML's assistant header: {where}"
    )
    assert template["fields"]["tool_calls"]["open"] == "<tool_call>", f"{label} no longer opens on <tool_call>: {where}"


@contract("trl.chat_template_utils.parse_response")
def _(label):
    where = "rlhf_lab/evaluation/tool_use.py parses the held-out answers' tool calls with it"
    expect_params(
        load("trl.chat_template_utils.parse_response", where), ["tokenizer", "ids", "prefix", "tools"], label, where
    )
    for name in ("supports_tool_calling", "add_response_schema"):
        expect_params(
            load(f"trl.chat_template_utils.{name}", "rlhf_lab/models/tool_template.py calls it"),
            ["processing_class"],
            f"trl.chat_template_utils.{name}",
            "rlhf_lab/models/tool_template.py calls it",
        )


@contract("trl.trainer.utils._use_triton")
def _(label):
    where = "rlhf_lab/patches/scored_positions.py replaces it to make the fused head score labelled positions only"
    utils = load("trl.trainer.utils", where)
    func = load("trl.trainer.utils._use_triton", where)
    func = getattr(func, "original", func)  # rlhf_lab's replacement keeps the original
    assert callable(func), f"{label} is not a function: {where}"
    expect_params(func, ["device"], label, where)
    forward = nested_code(utils.add_fused_lm_head, "_fused_forward")
    assert forward is not None and "_use_triton" in forward.co_names, (
        f"trl.trainer.utils.add_fused_lm_head's forward no longer looks up _use_triton, so the patch has no effect: "
        f"{where}"
    )
    assert utils.add_fused_lm_head.__globals__ is vars(utils), (
        f"add_fused_lm_head moved out of trl.trainer.utils, so patching trl.trainer.utils._use_triton does nothing: "
        f"{where}"
    )


@contract("trl.trainer.utils.add_fused_lm_head")
def _(label):
    where = (
        "rlhf_lab/patches/shared_prompt.py wraps the forward it installs and calls it with fused_lm_head=, "
        "labels=, shift_labels=, input_ids=, attention_mask=, position_ids="
    )
    func = load(label, where)
    forward = nested_code(func, "_fused_forward")
    assert forward is not None, f"{label} no longer installs a _fused_forward: {where}"
    named = forward.co_varnames[: forward.co_argcount + forward.co_kwonlyargcount]
    missing = {"fused_lm_head", "labels", "shift_labels"} - set(named)
    assert not missing, f"{label}'s forward takes ({', '.join(named)}), without {sorted(missing)}: {where}"
    assert forward.co_flags & inspect.CO_VARKEYWORDS, f"{label}'s forward no longer takes **kwargs: {where}"
    dpo = load("trl.DPOTrainer", where)
    calls = [
        n
        for n in ast.walk(tree(dpo.__init__))
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "add_fused_lm_head"
    ]
    assert calls, f"DPOTrainer.__init__ no longer calls add_fused_lm_head: {where}"


@contract("trl.trainer.utils.FusedCausalLMOutput")
def _(label):
    where = "rlhf_lab/patches/shared_prompt.py builds it from the packed forward"
    cls = load(label, where)
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = {"loss", "log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask"} - fields
    assert not missing, f"{label} has no {sorted(missing)}: {where}"


for path, keywords in {
    "trl.trainer.dpo_trainer.DataCollatorForVisionPreference": ("processor", "max_length"),
    "trl.trainer.kto_trainer.DataCollatorForVisionUnpairedPreference": ("processor", "max_length", "calculate_kl"),
}.items():

    @contract(path)
    def _(label, keywords=keywords):
        where = f"rlhf_lab/vision/batches.py imports it from this module and builds it with {', '.join(keywords)}="
        cls = load(label, where)
        missing = set(keywords) - set(params(cls))
        assert not missing, f"{label} takes no {sorted(missing)}: {where}"


# transformers: Trainer internals ----------------------------------------------------------------------------------

SAVE_WHERE = (
    "rlhf_lab/training/checkpoints.py replaces it on each trainer and calls the original as (model, trial); "
    "rlhf_lab/algorithms/ppo/trainer.py calls it"
)
for trainer in (
    "transformers.Trainer",
    "trl.GRPOTrainer",
    "trl.DPOTrainer",
    "trl.KTOTrainer",
    "trl.RewardTrainer",
    "trl.experimental.gkd.GKDTrainer",
    "trl.experimental.cpo.CPOTrainer",
    "trl.experimental.orpo.ORPOTrainer",
):

    @contract(f"{trainer}._save_checkpoint")
    def _(label, trainer=trainer):
        cls = load(trainer, SAVE_WHERE)
        expect_kind(cls, "_save_checkpoint", "function", label, SAVE_WHERE)
        expect_params(cls._save_checkpoint, ["self", "model", "trial"], label, SAVE_WHERE)
        own = vars(cls).get("_save_checkpoint")
        if own is not None and cls.__name__ != "Trainer":
            assert super_calls(own, "_save_checkpoint") or self_calls(own, "_get_output_dir"), (
                f"{label} no longer saves through Trainer._save_checkpoint / _get_output_dir, so checkpoints bypass "
                f"the staging directory: {SAVE_WHERE}"
            )


@contract("transformers.Trainer._get_output_dir")
def _(label):
    where = (
        "rlhf_lab/training/checkpoints.py shadows it on the instance (lambda trial=None) to save into its staging "
        "directory"
    )
    cls = load("transformers.Trainer", where)
    expect_kind(cls, "_get_output_dir", "function", label, where)
    expect_params(cls._get_output_dir, ["self", "trial"], label, where)
    assert self_calls(cls._save_checkpoint, "_get_output_dir"), (
        f"Trainer._save_checkpoint no longer asks self._get_output_dir where to write: {where}"
    )


PPO_WHERE = "rlhf_lab/algorithms/ppo/trainer.py"
for name, expected, use in (
    ("_load_from_checkpoint", ["self", "resume_from_checkpoint", "model"], "calls it (checkpoint, model=) on resume"),
    ("_load_optimizer_and_scheduler", ["self", "checkpoint"], "calls it (checkpoint) on resume"),
    ("_load_rng_state", ["self", "checkpoint"], "calls it (checkpoint) on resume"),
):

    @contract(f"transformers.Trainer.{name}")
    def _(label, name=name, expected=expected, use=use):
        where = f"{PPO_WHERE} {use}"
        cls = load("transformers.Trainer", where)
        expect_kind(cls, name, "function", label, where)
        expect_params(getattr(cls, name), expected, label, where)


@contract("transformers.Trainer.save_model")
def _(label):
    where = f"{PPO_WHERE} overrides it (output_dir, _internal_call); Trainer._save_checkpoint calls it"
    cls = load("transformers.Trainer", where)
    expect_params(cls.save_model, ["self", "output_dir", "_internal_call"], label, where)
    saves = self_calls(cls._save_checkpoint, "save_model")
    assert any(k.arg == "_internal_call" for c in saves for k in c.keywords), (
        f"Trainer._save_checkpoint no longer calls self.save_model(output_dir, _internal_call=True): {where}"
    )


@contract("transformers.Trainer._prepare_for_training")
def _(label):
    where = f"{PPO_WHERE} calls it (max_steps, None, None) for the wrapped model, optimizer and scheduler"
    cls = load("transformers.Trainer", where)
    expect_kind(cls, "_prepare_for_training", "function", label, where)
    expect_params(
        cls._prepare_for_training, ["self", "max_steps", "train_dataloader", "resume_from_checkpoint"], label, where
    )
    returns = [n.value for n in ast.walk(tree(cls._prepare_for_training)) if isinstance(n, ast.Return)]
    assert returns and all(isinstance(r, ast.Tuple) and len(r.elts) == 2 for r in returns), (
        f"{label} no longer returns (model, train_dataloader): {where}"
    )
    for step in ("create_optimizer", "create_scheduler"):
        assert self_calls(cls._prepare_for_training, step), f"{label} no longer calls self.{step}: {where}"


@contract("transformers.Trainer.train")
def _(label):
    where = (
        f"{PPO_WHERE} overrides it (resume_from_checkpoint, trial, **kwargs); rlhf_lab/training/pipeline.py calls it"
    )
    cls = load("transformers.Trainer", where)
    expect_params(cls.train, ["self", "resume_from_checkpoint", "trial"], label, where, prefix=True)


for attr, where in {
    "model_wrapped": f"{PPO_WHERE} and rlhf_lab/algorithms/grpo/trainer.py read and replace it",
    "callback_handler": f"{PPO_WHERE} drives the callbacks through it",
    "control": f"{PPO_WHERE} passes and replaces it",
}.items():

    @contract(f"transformers.Trainer.{attr}")
    def _(label, attr=attr, where=where):
        expect_attribute(load("transformers.Trainer", where), attr, label, where)


@contract("transformers.trainer_callback.CallbackHandler.callbacks")
def _(label):
    where = f"{PPO_WHERE} reads callback_handler.callbacks for the stateful callbacks"
    expect_attribute(load("transformers.trainer_callback.CallbackHandler", where), "callbacks", label, where)


for event in ("on_train_begin", "on_step_begin", "on_step_end", "on_save", "on_train_end"):

    @contract(f"transformers.trainer_callback.CallbackHandler.{event}")
    def _(label, event=event):
        where = f"{PPO_WHERE} calls callback_handler.{event}(args, state, control) and keeps what it returns"
        cls = load("transformers.trainer_callback.CallbackHandler", where)
        expect_params(getattr(cls, event), ["self", "args", "state", "control"], label, where, prefix=True)
        returns = [n for n in ast.walk(tree(getattr(cls, event))) if isinstance(n, ast.Return) and n.value is not None]
        assert returns, f"{label} no longer returns the control: {where}"


@contract("transformers.trainer_callback.ExportableState")
def _(label):
    where = f"{PPO_WHERE} imports it from this module to pick the stateful callbacks"
    cls = load(label, where)
    assert isinstance(cls, type) and callable(getattr(cls, "state", None)), f"{label} has no state(): {where}"


@contract("transformers.TrainerState")
def _(label):
    where = (
        f"{PPO_WHERE} builds it with is_local_process_zero=, is_world_process_zero=, stateful_callbacks= and "
        "sets its fields"
    )
    cls = load(label, where)
    fields = {f.name for f in dataclasses.fields(cls)}
    used = {
        "is_local_process_zero",
        "is_world_process_zero",
        "stateful_callbacks",
        "max_steps",
        "num_train_epochs",
        "logging_steps",
        "save_steps",
        "global_step",
        "epoch",
        "log_history",
        "total_flos",
    }
    assert not used - fields, f"{label} has no {sorted(used - fields)}: {where}"


@contract("transformers.TrainerState.load_from_json")
def _(label):
    where = f"{PPO_WHERE} reads a checkpoint's trainer state with it"
    cls = load("transformers.TrainerState", where)
    expect_kind(cls, "load_from_json", "classmethod", label, where)
    expect_params(cls.load_from_json, ["json_path"], label, where)


@contract("transformers.TrainerState.compute_steps")
def _(label):
    where = (
        "rlhf_lab/training/resume_intervals.py calls state.compute_steps(args, state.max_steps) when training begins"
    )
    cls = load("transformers.TrainerState", where)
    expect_kind(cls, "compute_steps", "function", label, where)
    expect_params(cls.compute_steps, ["self", "args", "max_steps"], label, where)


@contract("transformers.trainer_utils.TrainOutput")
def _(label):
    where = f"{PPO_WHERE} builds it positionally; rlhf_lab/training/pipeline.py reads training_loss"
    fields = load(label, where)._fields
    assert fields == ("global_step", "training_loss", "metrics"), f"{label} is now {fields}: {where}"


@contract("transformers.trainer_utils.PREFIX_CHECKPOINT_DIR")
def _(label):
    where = "rlhf_lab/training/checkpoints.py names and finds checkpoints as PREFIX + step"
    from rlhf_lab.training.checkpoints import PREFIX

    value = load(label, where)
    assert f"{value}-" == PREFIX, f"{label} is {value!r}, rlhf_lab's PREFIX is {PREFIX!r}: {where}"


@contract("transformers.trainer.TRAINER_STATE_NAME")
def _(label):
    where = "rlhf_lab/training/checkpoints.py and algorithms/ppo/trainer.py read the trainer state file by this name"
    from rlhf_lab.training.checkpoints import TRAINER_STATE

    value = load(label, where)
    assert value == TRAINER_STATE, f"{label} is {value!r}, rlhf_lab's TRAINER_STATE is {TRAINER_STATE!r}: {where}"


# transformers: model internals ------------------------------------------------------------------------------------


@contract("transformers.PretrainedConfig._attn_implementation")
def _(label):
    where = "rlhf_lab/patches/shared_prompt.py reads model.config._attn_implementation to pick the mask kind"
    load("transformers.PretrainedConfig", where)
    config_class = load("transformers.LlamaConfig", where)
    for name in ("sdpa", "eager"):
        got = getattr(config_class(attn_implementation=name), "_attn_implementation", "<missing>")
        assert got == name, f"{label} is {got!r} for attn_implementation={name!r}: {where}"


@contract("transformers.AutoModelForImageTextToText._model_mapping")
def _(label):
    where = "rlhf_lab/vision/models.py looks up a vision-language model's class in it to build a reward model"
    mapping = load(label, where)
    config_class = load("transformers.Qwen2VLConfig", where)
    pretrained = load("transformers.modeling_utils.PreTrainedModel", where)
    model_class = mapping[config_class]
    assert model_class.__name__ == "Qwen2VLForConditionalGeneration", (
        f"{label}[Qwen2VLConfig] is {model_class}: {where}"
    )
    bases = [c for c in model_class.__mro__[1:] if issubclass(c, pretrained) and c is not pretrained]
    assert bases, f"{model_class.__name__} has no family PreTrainedModel base: {where}"


@contract("transformers.modeling_layers.GenericForSequenceClassification")
def _(label):
    where = (
        "rlhf_lab/vision/models.py mixes it into vision reward models; rlhf_lab/algorithms/ppo/models.py reads "
        "the backbone at base_model_prefix and the .score head of sequence classifiers"
    )
    cls = load(label, where)
    expect_params(cls.__init__, ["self", "config"], label + ".__init__", where)
    expect_attribute(cls, "score", label, where)
    assert "base_model_prefix" in ast.unparse(tree(cls.__init__)), (
        f"{label}.__init__ no longer puts the backbone at base_model_prefix: {where}"
    )
    sequence_classifier = load("transformers.LlamaForSequenceClassification", where)
    assert issubclass(sequence_classifier, cls), f"LlamaForSequenceClassification is no longer a {label}: {where}"


@contract("transformers.modeling_utils.PreTrainedModel")
def _(label):
    where = "rlhf_lab/vision/models.py imports it from this module"
    assert load(label, where) is load("transformers.PreTrainedModel", where), f"{label} is another class: {where}"


# transformers and DeepSpeed: the settings rlhf_lab writes for them ------------------------------------------------


@contract("transformers.trainer_utils.SchedulerType")
def _(label):
    where = "rlhf_lab/config/train.py lists its values (LR_SCHEDULERS) to check train.lr_scheduler_type"
    from rlhf_lab.config.train import LR_SCHEDULERS

    values = {s.value for s in load(label, where)}
    assert values == set(LR_SCHEDULERS), (
        f"{label} added {sorted(values - set(LR_SCHEDULERS))}, removed {sorted(set(LR_SCHEDULERS) - values)}: {where}"
    )


@contract("transformers.TrainingArguments._process_fsdp_args")
def _(label):
    where = "rlhf_lab/config/distributed.py FSDPConfig.fsdp_config() writes these keys (an unread key is ignored)"
    from rlhf_lab.config.distributed import FSDPConfig

    read = string_constants(load(label, where))
    for full in (True, False):
        unread = set(FSDPConfig(full_state_dict=full).fsdp_config()) - read
        assert not unread, f"{label} no longer reads fsdp_config keys {sorted(unread)}: {where}"


def deepspeed_configs():
    from rlhf_lab.config.distributed import DeepSpeedConfig

    for stage in (0, 1, 2, 3):
        for optimizer in ("none", "cpu") if stage else ("none",):
            for param in ("none", "cpu") if stage == 3 else ("none",):
                config = DeepSpeedConfig(zero_stage=stage, offload_optimizer=optimizer, offload_param=param)
                yield config.deepspeed_json()


def auto_keys(config: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in config.items():
        if isinstance(value, dict):
            keys |= auto_keys(value, f"{prefix}{key}.")
        elif value == "auto":
            keys.add(prefix + key)
    return keys


@contract("transformers.integrations.deepspeed.HfTrainerDeepSpeedConfig.trainer_config_process")
def _(label):
    where = (
        "rlhf_lab/config/distributed.py DeepSpeedConfig.deepspeed_json() leaves these values 'auto' for "
        "transformers to fill"
    )
    filled = string_constants(load(label, where))
    for config in deepspeed_configs():
        unfilled = auto_keys(config) - filled
        assert not unfilled, f"{label} no longer fills {sorted(unfilled)}: {where}"


@contract("deepspeed.runtime.zero.config.DeepSpeedZeroConfig")
def _(label):
    where = "rlhf_lab/config/distributed.py DeepSpeedConfig.deepspeed_json() writes the zero_optimization block"
    zero_config = load(label, where)
    key = load("deepspeed.runtime.zero.config.ZERO_OPTIMIZATION", where)
    for config in deepspeed_configs():
        assert key in config, f"DeepSpeed reads ZeRO settings from {key!r}: {where}"
        try:
            parsed = zero_config(**config[key])
        except Exception as e:  # noqa: BLE001 - pydantic's ValidationError, whatever its module
            raise AssertionError(f"{label} refuses {config[key]}: {' '.join(str(e).split())[:300]}: {where}") from None
        assert parsed.stage == config[key]["stage"], f"{label} read stage {parsed.stage} from {config[key]}: {where}"


@contract("deepspeed.runtime.constants")
def _(label):
    where = "rlhf_lab/config/distributed.py DeepSpeedConfig.deepspeed_json() writes these top-level keys"
    constants = load(label, where)
    known = {v for k, v in vars(constants).items() if k.isupper() and isinstance(v, str)}
    known.add(load("deepspeed.runtime.zero.config.ZERO_OPTIMIZATION", where))
    for config in deepspeed_configs():
        unknown = set(config) - known
        assert not unknown, f"DeepSpeed knows no config keys {sorted(unknown)}: {where}"


# peft -------------------------------------------------------------------------------------------------------------


@contract("peft.tuners.lora.LoraLayer")
def _(label):
    where = "rlhf_lab/algorithms/grpo/generation_copy.py and models/frozen_base.py find adapter layers by it"
    assert isinstance(load(label, where), type), f"{label} is not a class: {where}"


@contract("peft.tuners.lora.LoraLayer.get_base_layer")
def _(label):
    where = "rlhf_lab/algorithms/grpo/generation_copy.py and models/frozen_base.py call layer.get_base_layer()"
    cls = load("peft.tuners.lora.LoraLayer", where)
    expect_kind(cls, "get_base_layer", "function", label, where)
    expect_params(cls.get_base_layer, ["self"], label, where)


@contract("peft.tuners.lora.Linear.get_delta_weight")
def _(label):
    where = (
        "rlhf_lab/algorithms/grpo/generation_copy.py calls layer.get_delta_weight(adapter) to refresh its merged copy"
    )
    cls = load("peft.tuners.lora.Linear", where)
    assert issubclass(cls, load("peft.tuners.lora.LoraLayer", where)), f"{cls} is no longer a LoraLayer: {where}"
    expect_kind(cls, "get_delta_weight", "function", label, where)
    expect_params(cls.get_delta_weight, ["self", "adapter"], label, where)


# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_contract(name):
    CONTRACTS[name]()
