"""TRL's GRPOTrainer plus what rlhf_lab adds: dynamic sampling, the zero-variance watch, the RLOO and REINFORCE++
advantage estimators and the KL penalty moved into the reward."""

from __future__ import annotations

import logging
import random

import torch
from trl import GRPOTrainer

from rlhf_lab.algorithms.contract import LabTrainer
from rlhf_lab.algorithms.grpo import dynamic_sampling as ds
from rlhf_lab.algorithms.grpo.advantages import advantages as estimate_advantages
from rlhf_lab.errors import ConfigError
from rlhf_lab.rewards.remote import stop_if_down
from rlhf_lab.rewards.total import weighted_total

log = logging.getLogger("rlhf_lab")

# Consecutive generation rounds in which every group had equal rewards before we warn.
ZERO_VARIANCE_PATIENCE = 3


class LabGRPOTrainer(LabTrainer, GRPOTrainer):
    def __init__(
        self,
        *args,
        dynamic_sample: bool,
        max_resample_times: int,
        generation_copy: bool,
        advantage_estimator: str = "grpo",
        kl_in_reward: bool = False,
        image_bounds=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.advantage_estimator = advantage_estimator
        self.kl_in_reward = kl_in_reward
        self.generation_copy = None
        if generation_copy:
            from rlhf_lab.algorithms.grpo.generation_copy import GenerationCopy

            self.generation_copy = GenerationCopy(self.model)
            log.info(
                "sampling from a merged bf16 copy of the policy, refreshed after every update "
                "(algorithm.generation_copy)"
            )
        # Rows keep image references; they are decoded (within the model's pixel bounds) when prompts are generated.
        self.image_bounds = image_bounds
        self.dynamic_sample = dynamic_sample
        self.max_resample_times = max_resample_times
        # Per generation round (training only): fraction of groups whose rewards were all equal.
        self.zero_variance_history: list[float] = []
        self.resample_totals = {"dropped_groups": 0, "refilled_groups": 0, "uninformative_kept": 0, "rounds": 0}
        self._zero_streak = 0
        self._refill_rng = random.Random(self.args.seed + 7919 * self.accelerator.process_index)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        # A reward service that stayed down stops every process here, before its missing rewards are trained on.
        stop_if_down(self.reward_funcs)
        # Gathered over processes, weighted and summed as TRL does for advantages (NaN: no reward scored it);
        # this process's rows are its slice.
        gathered = weighted_total(rewards_per_func, self.reward_weights)
        gathered[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
        self._last_gathered_rewards = gathered
        start = self.accelerator.process_index * len(prompts)
        self._last_rewards = gathered[start : start + len(prompts)]
        return rewards_per_func

    def score_answers(self, rows: list[dict], prompts, completions, completion_ids, environments=None) -> tuple:
        """(total reward per answer, each reward per answer) by the training's own scoring: the same reward functions,
        reward model and weights (and the environments' own rewards, given the answers' environments). TRL gathers the
        answers of every process (all of them call this together, on the same held-out rows)."""
        training_environments, self.environments = self.environments, environments
        try:
            per_reward = self._calculate_rewards(rows, prompts, completions, completion_ids).cpu()
        finally:
            self.environments = training_environments
        return weighted_total(per_reward, self.reward_weights.cpu()), per_reward

    def _with_images(self, inputs: list[dict]) -> list[dict]:
        if self.image_bounds is None:
            return inputs
        from rlhf_lab.data.images import decoded

        return [decoded(row, self.image_bounds) for row in inputs]

    def _generate_single_turn(self, *args, **kwargs):
        # Sample from the policy itself, without dropout: TRL generates in training mode, which samples from a
        # dropout-perturbed policy and costs a random mask per adapter layer at every generated token.
        was_training = self.model.training
        self.model.eval()
        try:
            if self.generation_copy is None:
                return super()._generate_single_turn(*args, **kwargs)
            self.generation_copy.refresh(self.state.global_step)
            # TRL generates with self.model_wrapped: hand it the copy for this call.
            wrapped, self.model_wrapped = self.model_wrapped, self.generation_copy.model
            try:
                return super()._generate_single_turn(*args, **kwargs)
            finally:
                self.model_wrapped = wrapped
        finally:
            self.model.train(was_training)

    def _score_round(self, inputs: list[dict]) -> dict:
        """One generation round: TRL generates and scores (its advantages are GRPO's); other estimators, or the KL
        penalty in the reward, replace the advantages from the same rewards."""
        batch = super()._generate_and_score_completions(self._with_images(inputs))
        if self.advantage_estimator != "grpo" or self.kl_in_reward:
            batch["advantages"] = self._estimated_advantages(batch)
        return batch

    def _estimated_advantages(self, batch: dict) -> torch.Tensor:
        mode = "train" if self.model.training else "eval"
        n = self.num_generations if mode == "train" else self.num_generations_eval
        rewards = self._last_gathered_rewards.to(batch["advantages"].device)
        if self.kl_in_reward:
            kl = self.accelerator.gather(self._answer_kl(batch))
            self._metrics[mode]["kl_in_reward"].append(kl.mean().item())
            rewards = rewards - self.beta * kl
        values = estimate_advantages(rewards, n, self.advantage_estimator, self.args.scale_rewards)
        size = len(batch["advantages"])
        start = self.accelerator.process_index * size
        return values[start : start + size].to(batch["advantages"].dtype)

    def _answer_kl(self, batch: dict) -> torch.Tensor:
        """Each answer's summed log-ratio of the sampling policy to the reference, over its own (trained) tokens."""
        logps = batch.get("old_per_token_logps")
        if logps is None:
            ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
            mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
            # Without dropout, as the answers were sampled (and as the reference's log-probs are taken).
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    logps, _, _ = self._get_per_token_logps_and_entropies(
                        self.model, ids, mask, batch["completion_ids"].size(1), batch_size=len(ids)
                    )
            finally:
                self.model.train(was_training)
        trained = batch["completion_mask"] * batch["tool_mask"] if "tool_mask" in batch else batch["completion_mask"]
        return ((logps - batch["ref_per_token_logps"]) * trained).sum(dim=1)

    def _compute_loss(self, model, inputs):
        if not self.kl_in_reward:
            return super()._compute_loss(model, inputs)
        # The KL penalty already lowered the rewards: the loss goes without TRL's KL term.
        beta, self.beta = self.beta, 0.0
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self.beta = beta

    def _generate_and_score_completions(self, inputs):
        batch = self._score_round(inputs)
        if not self.model.training:
            return batch
        n = self.num_generations
        informative = ds.informative_groups(self._last_rewards, n)
        fraction = 1.0 - informative.float().mean().item()
        self._watch_zero_variance(fraction)
        if not self.dynamic_sample:
            return batch
        return self._refill(batch, informative, len(inputs))

    def _watch_zero_variance(self, fraction: float) -> None:
        self.zero_variance_history.append(fraction)
        self._metrics["train"]["zero_variance_fraction"].append(fraction)
        self._zero_streak = self._zero_streak + 1 if fraction == 1.0 else 0
        if self._zero_streak == ZERO_VARIANCE_PATIENCE:
            log.warning(
                "every group had equal rewards in the last %d generation rounds, so training is learning nothing: "
                "the task is too easy or too hard for the model, or the rewards cannot tell answers apart "
                "(try more num_generations, a higher temperature, other rewards, or algorithm.dynamic_sample=true)",
                ZERO_VARIANCE_PATIENCE,
            )

    def _refill(self, batch: dict, informative: torch.Tensor, size: int) -> dict:
        unsupported = ds.unsupported_keys(batch)
        if unsupported:
            raise ConfigError("algorithm.dynamic_sample", f"does not support batches with {unsupported} yet")
        n = self.num_generations
        batches, masks = [batch], [informative]
        have = int(informative.sum())
        need_groups = size // n
        for _ in range(self.max_resample_times):
            # Every process generates in the same rounds (generation and reward gathering are collective).
            short = torch.tensor([float(have < need_groups)], device=self.accelerator.device)
            if self.accelerator.gather(short).sum().item() == 0:
                break
            more = self._score_round(self._more_prompts(need_groups))
            batches.append(more)
            masks.append(ds.informative_groups(self._last_rewards, n))
            have += int(masks[-1].sum())
        filled, stats = ds.fill_batch(batches, masks, n, size, self.processing_class.pad_token_id)
        mask = filled["completion_mask"] * filled["tool_mask"] if "tool_mask" in filled else filled["completion_mask"]
        filled["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
        for key, value in stats.items():
            self.resample_totals[key] += value
            self._metrics["train"][f"dynamic_sampling/{key}"].append(float(value))
        return filled

    def _more_prompts(self, groups: int) -> list[dict]:
        """Further prompts for a refill round, each repeated num_generations times (as TRL's sampler does)."""
        drawn = [self.train_dataset[self._refill_rng.randrange(len(self.train_dataset))] for _ in range(groups)]
        # Through the collator, as the dataloader's batches: it decodes rows read per batch (lazy_tokenize).
        rows = self.data_collator(drawn)
        return [dict(row) for row in rows for _ in range(self.num_generations)]

    # -- resuming: rlhf_lab's own counters (TRL's sampler order, RNG states and step come from the checkpoint) --

    def lab_checkpoint_state(self) -> dict:
        version, internal, gauss = self._refill_rng.getstate()
        return {
            "zero_variance_history": self.zero_variance_history,
            "resample_totals": self.resample_totals,
            "zero_streak": self._zero_streak,
            "refill_rng": [version, list(internal), gauss],
        }

    def lab_restore_state(self, state: dict) -> None:
        self.zero_variance_history = list(state["zero_variance_history"])
        self.resample_totals = dict(state["resample_totals"])
        self._zero_streak = state["zero_streak"]
        version, internal, gauss = state["refill_rng"]
        self._refill_rng.setstate((version, tuple(internal), gauss))

    def summary_extras(self) -> dict:
        extras = {
            "zero_variance_fraction_per_round": [round(f, 3) for f in self.zero_variance_history],
            "generation_copy": self.generation_copy is not None,
        }
        if self.dynamic_sample:
            extras["dynamic_sampling"] = dict(self.resample_totals)
        return extras
