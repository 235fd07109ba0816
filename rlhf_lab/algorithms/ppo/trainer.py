"""The PPO loop on transformers' Trainer machinery (optimizer, scheduler, accelerate wrapping, callbacks,
checkpoints); the loop itself is rlhf_lab's: one training step is one PPO update.

One update: sample answers to a rollout of prompts, score them, fold the per-token KL penalty into the rewards,
compute GAE advantages with the critic, then num_ppo_epochs passes over shuffled mini-batches, each mini-batch
one optimizer step over gradient_accumulation_steps micro-batches of per_device_train_batch_size answers.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, Trainer, TrainerState
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import TrainOutput

from rlhf_lab.algorithms.contract import LabTrainer
from rlhf_lab.algorithms.ppo import formulas as pm
from rlhf_lab.algorithms.ppo.config import PPOConfig
from rlhf_lab.algorithms.ppo.models import PolicyAndValue, RewardScorer, position_ids, token_values
from rlhf_lab.models import fast_sampling
from rlhf_lab.training.checkpoints import TRAINER_STATE


@dataclass
class Rollout:
    """One rollout's tensors, [n, ...] on the training device; response tensors are [n, R]."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    responses: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    @property
    def response_length(self) -> int:
        return self.responses.size(1)


class PromptStream:
    """Rollout-sized lists of rows, reshuffled every pass; each process takes its own share of every pass."""

    def __init__(self, rows: list[dict], batch: int, seed: int, rank: int = 0, world: int = 1, row_at=None):
        self.rows, self.batch, self.rank, self.world = rows, batch, rank, world
        # index -> row (rows read per batch check each row's length as it is drawn)
        self.row_at = row_at or rows.__getitem__
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []

    def next_batch(self) -> list[dict]:
        while len(self.order) < self.batch:
            perm = torch.randperm(len(self.rows), generator=self.generator).tolist()
            # With fewer prompts than processes every process takes them all rather than none.
            self.order += perm[self.rank :: self.world] or perm
        batch, self.order = self.order[: self.batch], self.order[self.batch :]
        return [self.row_at(i) for i in batch]


def truncate_after_stop(responses: torch.Tensor, stop_ids: list[int], pad_id: int):
    """Cut each answer after its first stop token: (responses padded after it, mask of kept tokens, has_stop)."""
    is_stop = torch.isin(responses, torch.tensor(stop_ids, device=responses.device))
    has_stop = is_stop.any(dim=1)
    first = torch.where(has_stop, is_stop.int().argmax(dim=1), responses.size(1) - 1)
    steps = torch.arange(responses.size(1), device=responses.device)
    mask = (steps.unsqueeze(0) <= first.unsqueeze(1)).long()
    return responses.masked_fill(mask == 0, pad_id), mask, has_stop


class LabPPOTrainer(LabTrainer, Trainer):
    def __init__(
        self,
        *,
        policy,
        value_model,
        ref_model,
        ref_context,
        scorer: RewardScorer,
        cfg: PPOConfig,
        args,
        tokenizer,
        train_rows: list[dict],
        callbacks=None,
        row_at=None,
    ):
        super().__init__(
            model=PolicyAndValue(policy, value_model), args=args, processing_class=tokenizer, callbacks=callbacks
        )
        self.cfg = cfg
        self.ref_model = ref_model.to(self.args.device) if ref_model is not None else None
        self.ref_context = ref_context
        self.scorer = scorer
        self.train_rows = train_rows
        self.row_at = row_at
        self.stop_ids = sorted(self._stop_ids(policy, tokenizer))
        self.generation_config = GenerationConfig(
            do_sample=True,
            temperature=cfg.temperature,
            # Not settings: the policy ratio is taken over the whole temperature-scaled distribution, so sampling
            # must not truncate it (as TRL's PPO did).
            top_k=0,
            top_p=1.0,
            max_new_tokens=cfg.max_completion_length,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=self.stop_ids,
        )
        self.micro = args.per_device_train_batch_size
        self.mini = self.micro * args.gradient_accumulation_steps
        self.rollout_size = self.mini * cfg.num_mini_batches
        self.optimizer_steps = 0
        self.update_seconds: list[float] = []
        self.score_history: list[float] = []

    @staticmethod
    def _stop_ids(policy, tokenizer) -> set[int]:
        ids = {tokenizer.eos_token_id}
        configured = getattr(policy.generation_config, "eos_token_id", None)
        if configured is not None:
            ids |= set(configured if isinstance(configured, list) else [configured])
        return ids

    # -- the loop ---------------------------------------------------------------------------------------------

    def num_updates(self) -> int:
        if self.args.max_steps > 0:
            return self.args.max_steps
        per_pass = math.ceil(len(self.train_rows) / (self.rollout_size * self.args.world_size))
        return max(1, math.ceil(per_pass * self.args.num_train_epochs))

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs) -> TrainOutput:
        args = self.args
        updates = self.num_updates()
        steps_per_update = self.cfg.num_ppo_epochs * self.cfg.num_mini_batches
        self.state = TrainerState(
            is_local_process_zero=self.is_local_process_zero(),
            is_world_process_zero=self.is_world_process_zero(),
            stateful_callbacks=[
                cb for cb in self.callback_handler.callbacks + [self.control] if isinstance(cb, ExportableState)
            ],
        )
        self.state.max_steps = updates
        self.state.num_train_epochs = args.num_train_epochs
        self.state.logging_steps = args.logging_steps
        self.state.save_steps = args.save_steps
        # The scheduler counts optimizer steps; the run counts updates.
        model, _ = self._prepare_for_training(updates * steps_per_update, None, None)
        self.model_wrapped = model
        stream = PromptStream(
            self.train_rows, self.rollout_size, args.seed, args.process_index, args.world_size, self.row_at
        )
        self.stream = stream
        self.shuffle = torch.Generator().manual_seed(args.seed + 1 + args.process_index)
        self.losses: list[float] = []
        if resume_from_checkpoint:
            self._resume(resume_from_checkpoint, model)
            self._apply_pending_state()

        step_prompts = self.rollout_size * args.world_size
        self.control = self.callback_handler.on_train_begin(args, self.state, self.control)
        losses = self.losses
        for _ in range(self.state.global_step, updates):
            self.control = self.callback_handler.on_step_begin(args, self.state, self.control)
            started = time.time()
            rollout, stats = self.rollout(stream.next_batch())
            stats.update(self.optimize(rollout))
            self.update_seconds.append(time.time() - started)
            self.score_history.append(stats["score"])
            losses.append(stats["loss"])
            self.state.global_step += 1
            self.state.epoch = step_prompts * self.state.global_step / len(self.train_rows)
            self.control = self.callback_handler.on_step_end(args, self.state, self.control)
            step = self.state.global_step
            if step == 1 or step % args.logging_steps == 0 or step == updates:
                stats["learning_rate"] = self.lr_scheduler.get_last_lr()[0]
                if self.cfg.log_completions and self.is_world_process_zero():
                    from rlhf_lab.tracking.completions import write_completions

                    write_completions(
                        args.output_dir, step, {"step": [step] * len(self.samples["prompt"]), **self.samples}
                    )
                self.log({k: round(v, 6) for k, v in stats.items()})
            if (args.save_strategy == "steps" and step % args.save_steps == 0) or self.control.should_save:
                self._save_checkpoint(self.model_wrapped, trial)
                self.control = self.callback_handler.on_save(args, self.state, self.control)
            if self.control.should_training_stop:
                break
        self.control = self.callback_handler.on_train_end(args, self.state, self.control)
        return TrainOutput(self.state.global_step, sum(losses) / max(len(losses), 1), {})

    # -- resuming ---------------------------------------------------------------------------------------------

    def _resume(self, checkpoint: str, model) -> None:
        """Weights (policy and critic), optimizer, scheduler, RNG states, step and the prompt stream of a checkpoint
        this trainer wrote; transformers' own loaders read them (safetensors, weights-only torch.load)."""
        unwrapped: PolicyAndValue = self.accelerator.unwrap_model(model)
        self._load_from_checkpoint(checkpoint, model=unwrapped.policy)
        self._load_from_checkpoint(os.path.join(checkpoint, "value_model"), model=unwrapped.value_model)
        self._load_optimizer_and_scheduler(checkpoint)
        self._load_rng_state(checkpoint)
        saved = TrainerState.load_from_json(os.path.join(checkpoint, TRAINER_STATE))
        for key in ("global_step", "epoch", "log_history", "total_flos"):
            setattr(self.state, key, getattr(saved, key))

    def lab_checkpoint_state(self) -> dict:
        return {
            "prompt_order": self.stream.order,
            "prompt_generator": self.stream.generator.get_state().tolist(),
            "shuffle_generator": self.shuffle.get_state().tolist(),
            "optimizer_steps": self.optimizer_steps,
            "update_seconds": self.update_seconds,
            "score_history": self.score_history,
            "losses": self.losses,
        }

    def lab_restore_state(self, state: dict) -> None:
        self._pending_state = state  # applied once train() has built the stream and generators

    def _apply_pending_state(self) -> None:
        state = getattr(self, "_pending_state", None)
        if state is None:
            return
        self.stream.order = list(state["prompt_order"])
        self.stream.generator.set_state(torch.tensor(state["prompt_generator"], dtype=torch.uint8))
        self.shuffle.set_state(torch.tensor(state["shuffle_generator"], dtype=torch.uint8))
        self.optimizer_steps = state["optimizer_steps"]
        self.update_seconds = list(state["update_seconds"])
        self.score_history = list(state["score_history"])
        self.losses = list(state["losses"])
        self._pending_state = None

    # -- rollout ----------------------------------------------------------------------------------------------

    def _chunks(self, n: int):
        size = self.cfg.local_rollout_forward_batch_size
        return [slice(s, min(s + size, n)) for s in range(0, n, size)]

    def _policy_logits(self, policy, ids, attn, pos, response_length: int) -> torch.Tensor:
        """Temperature-scaled logits of the positions that predict the response tokens: [n, R, vocab]."""
        logits = policy(
            input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=response_length + 1, use_cache=False
        ).logits
        return self._scaled(logits)

    def _scaled(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits kept for the response (+1) -> those predicting each response token, at the sampling temperature."""
        return logits[:, :-1].float() / self.cfg.temperature

    @torch.no_grad()
    def rollout(self, rows: list[dict]) -> tuple[Rollout, dict]:
        cfg, tok, device = self.cfg, self.processing_class, self.args.device
        model: PolicyAndValue = self.accelerator.unwrap_model(self.model_wrapped)
        policy, value_model = model.policy, model.value_model
        model.eval()
        texts = [tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows]
        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(device)
        prompt_length = enc["input_ids"].size(1)

        generated = []
        for part in self._chunks(len(rows)):
            with self.accelerator.autocast():
                # Inverse-CDF draws: a tenth of a generated token's time cheaper than multinomial on CPUs.
                out = fast_sampling.generate(
                    policy,
                    input_ids=enc["input_ids"][part],
                    attention_mask=enc["attention_mask"][part],
                    generation_config=self.generation_config,
                )
            generated.append(out[:, prompt_length:])
        width = max(g.size(1) for g in generated)
        responses = torch.cat(
            [torch.nn.functional.pad(g, (0, width - g.size(1)), value=tok.pad_token_id) for g in generated]
        )
        responses, mask, has_stop = truncate_after_stop(responses, self.stop_ids, tok.pad_token_id)
        ids = torch.cat([enc["input_ids"], responses], dim=1)
        attn = torch.cat([enc["attention_mask"], mask], dim=1)
        pos = position_ids(attn)

        logprobs, ref_logprobs, values, entropies = [], [], [], []
        for part in self._chunks(len(rows)):
            args = (ids[part], attn[part], pos[part], width)
            with self.accelerator.autocast():
                logits = self._policy_logits(policy, *args)
                logprobs.append(pm.token_logprobs(logits, responses[part]))
                entropies.append(pm.entropy(logits))
                del logits
                with self.ref_context():
                    ref_logits = self._policy_logits(self.ref_model or policy, *args)
                ref_logprobs.append(pm.token_logprobs(ref_logits, responses[part]))
                del ref_logits
                values.append(token_values(value_model, ids[part], attn[part], pos[part])[:, prompt_length - 1 : -1])
        logprobs, ref_logprobs = torch.cat(logprobs), torch.cat(ref_logprobs)
        values, entropies = torch.cat(values), torch.cat(entropies)
        maskf = mask.float()

        completion_ids = [r[: int(m.sum())].tolist() for r, m in zip(responses, mask)]
        answers = tok.batch_decode(
            [c[:-1] if has else c for c, has in zip(completion_ids, has_stop.tolist())], skip_special_tokens=True
        )
        scores, per_reward = self.scorer(rows, answers, completion_ids)
        # The latest rollout's answers, for algorithm.log_completions (this process's share).
        self.samples = {
            "prompt": [r["prompt"] for r in rows],
            "completion": answers,
            "score": scores.tolist(),
            **{name: v.tolist() for name, v in per_reward.items()},
        }
        scores = scores.to(device)
        if cfg.missing_eos_penalty is not None:
            scores = scores - cfg.missing_eos_penalty * (~has_stop).float()

        kl = pm.kl_penalty(logprobs, ref_logprobs, cfg.kl_estimator) * maskf
        rewards = pm.token_rewards(scores, kl, maskf, cfg.kl_coef)
        if cfg.whiten_rewards:
            rewards = pm.masked_whiten(rewards, maskf, shift_mean=False)
        advantages, returns = pm.gae(rewards, values, maskf, cfg.gamma, cfg.lam)
        raw_advantage_mean = pm.masked_mean(advantages, maskf)
        advantages = pm.masked_whiten(advantages, maskf)

        non_score = (-cfg.kl_coef * kl).sum(1)
        stats = {
            "score": scores.mean().item(),
            **{f"reward/{name}": torch.nanmean(v).item() for name, v in per_reward.items()},
            "kl": kl.sum(1).mean().item(),
            "non_score_reward": non_score.mean().item(),
            "rlhf_reward": (scores + non_score).mean().item(),
            "entropy": pm.masked_mean(entropies, maskf).item(),
            "value_mean": pm.masked_mean(values, maskf).item(),
            "return_mean": pm.masked_mean(returns, maskf).item(),
            "advantage_mean": raw_advantage_mean.item(),
            "completion_length": maskf.sum(1).mean().item(),
            "eos_fraction": has_stop.float().mean().item(),
        }
        rollout = Rollout(ids, attn, pos, responses, maskf, logprobs, values, advantages, returns)
        return rollout, stats

    # -- update -----------------------------------------------------------------------------------------------

    def optimize(self, ro: Rollout) -> dict:
        cfg, args = self.cfg, self.args
        model = self.model_wrapped
        model.train()
        accum = args.gradient_accumulation_steps
        width, prompt_length = ro.response_length, ro.input_ids.size(1) - ro.response_length
        totals: dict[str, float] = {}
        count, norms = 0, []
        for _ in range(cfg.num_ppo_epochs):
            order = torch.randperm(ro.input_ids.size(0), generator=self.shuffle).to(ro.input_ids.device)
            for mb in range(cfg.num_mini_batches):
                mini = order[mb * self.mini : (mb + 1) * self.mini]
                for k in range(accum):
                    idx = mini[k * self.micro : (k + 1) * self.micro]
                    sync = k == accum - 1
                    with nullcontext() if sync else self.accelerator.no_sync(model):
                        with self.accelerator.autocast():
                            logits, values = model(
                                ro.input_ids[idx], ro.attention_mask[idx], ro.position_ids[idx], width + 1
                            )
                        new_logprobs = pm.token_logprobs(self._scaled(logits), ro.responses[idx])
                        new_values = values[:, prompt_length - 1 : -1]
                        mask = ro.mask[idx]
                        pg_loss, pg = pm.clipped_policy_loss(
                            new_logprobs, ro.logprobs[idx], ro.advantages[idx], mask, cfg.cliprange
                        )
                        vf_loss, vf = pm.clipped_value_loss(
                            new_values, ro.values[idx], ro.returns[idx], mask, cfg.cliprange_value
                        )
                        loss = pg_loss + cfg.vf_coef * vf_loss
                        self.accelerator.backward(loss / accum)
                    for key, value in (
                        ("loss", loss),
                        ("loss/policy", pg_loss),
                        ("loss/value", vf_loss),
                        ("policy/clip_fraction", pg["clip_fraction"]),
                        ("policy/approx_kl", pg["approx_kl"]),
                        ("policy/ratio", pg["ratio"]),
                        ("value/clip_fraction", vf["clip_fraction"]),
                    ):
                        totals[key] = totals.get(key, 0.0) + value.item()
                    count += 1
                if args.max_grad_norm:
                    norms.append(float(self.accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)))
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad()
                self.optimizer_steps += 1
        means = {k: v / count for k, v in totals.items()}
        if norms:
            means["grad_norm"] = sum(norms) / len(norms)
        return means

    # -- outputs ----------------------------------------------------------------------------------------------

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The policy (adapter or full model) in output_dir, the critic in output_dir/value_model."""
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        model: PolicyAndValue = self.accelerator.unwrap_model(self.model_wrapped)
        model.policy.save_pretrained(output_dir)
        value_dir = os.path.join(output_dir, "value_model")
        model.value_model.save_pretrained(value_dir)
        self.processing_class.save_pretrained(value_dir)

    def summary_extras(self) -> dict:
        seconds = self.update_seconds
        return {
            "ppo": {
                "updates": len(seconds),
                "optimizer_steps": self.optimizer_steps,
                "rollout_prompts_per_process": self.rollout_size,
                "seconds_per_update": round(sum(seconds) / max(len(seconds), 1), 3),
                "train_score_first_update": self.score_history[0] if self.score_history else None,
                "train_score_last_update": self.score_history[-1] if self.score_history else None,
            }
        }
