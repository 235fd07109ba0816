"""Held-out evaluation of a GRPO policy: the rewards its greedy answers to held-out prompts earn.

- reward: mean weighted total reward (what training maximises);
- reward/<name>: mean of each reward function (e.g. reward/accuracy is the fraction solved);
- completion_length: mean answer length in tokens.
Greedy decoding makes the before/after comparison free of sampling noise.
"""

from __future__ import annotations

import torch

from rlhf_lab.config.run import Run


def _encode(tokenizer, processor, prompts: list[list[dict]], images: list[list] | None, tools=None):
    """Left-padded prompt batch; with a processor, the images' pixels and expanded image tokens too."""
    if processor is None:
        chunk = [
            tokenizer.apply_chat_template(p, tools=tools, tokenize=False, add_generation_prompt=True) for p in prompts
        ]
        return tokenizer(chunk, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    chunk = [processor.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    flat = [image for row in images for image in row]
    return processor(
        text=chunk,
        images=flat or None,
        return_tensors="pt",
        padding=True,
        padding_side="left",
        add_special_tokens=False,
    )


@torch.inference_mode()
def generate_answers(
    model,
    tokenizer,
    prompts: list[list[dict]],
    max_new_tokens: int,
    batch_size: int,
    bf16: bool,
    processor=None,
    images: list[list] | None = None,
    tools: list | None = None,
):
    """Greedy answers: (texts, token ids up to and including the first end-of-sequence token).
    With a processor, `images` holds each prompt's decoded images; `tools` are rendered into the prompts."""
    from rlhf_lab.evaluation.preference import evaluating

    stop = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    suppress = {}
    if processor is not None:
        from rlhf_lab.vision.batches import image_token_ids

        # A generated image token would have no image features behind it (TRL suppresses it for the same reason).
        suppress = {"suppress_tokens": sorted(image_token_ids(model))}
    texts, ids_out = [], []
    with evaluating(model) as device:
        for start in range(0, len(prompts), batch_size):
            chunk_images = images[start : start + batch_size] if images is not None else None
            enc = _encode(tokenizer, processor, prompts[start : start + batch_size], chunk_images, tools).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    **suppress,
                )
            for row in out[:, enc["input_ids"].size(1) :].tolist():
                end = next((i + 1 for i, t in enumerate(row) if t in stop), len(row))
                ids_out.append(row[:end])
                texts.append(tokenizer.decode(row[:end], skip_special_tokens=True))
    return texts, ids_out


class HeldOutAnswers:
    """Greedy answers of the policy to the held-out prompts, scored by the trainer's own rewards."""

    def __init__(self, run: Run, tokenizer, rows: list[dict], bf16: bool, trainer=None):
        self.run = run
        self.rows = rows
        self.tokenizer = tokenizer
        self.bf16 = bf16
        self.trainer = trainer
        self.max_new_tokens = run.algorithm.max_completion_length
        self.batch_size = run.train.per_device_eval_batch_size

    def answers(self, policy) -> tuple[list[str], list[list[int]]]:
        prompts = [row["prompt"] for row in self.rows]
        vision = {}
        if "images" in self.rows[0]:
            from rlhf_lab.data.images import load_image
            from rlhf_lab.vision.batches import pixel_bounds

            bounds = pixel_bounds(self.run)
            images = [[load_image(ref, row, bounds) for ref in row["images"]] for row in self.rows]
            vision = dict(processor=self.trainer.processing_class, images=images)
        return generate_answers(
            policy, self.tokenizer, prompts, self.max_new_tokens, self.batch_size, self.bf16, **vision
        )


class HeldOutReward(HeldOutAnswers):
    def evaluate(self, model) -> dict:
        prompts = [row["prompt"] for row in self.rows]
        environments, extra = None, {}
        if self.run.algorithm.uses_tools:
            completions, ids, environments, extra = self.tool_answers(model)
        else:
            texts, ids = self.answers(model)
            completions = [[{"role": "assistant", "content": t}] for t in texts]
        total, per_func = self.trainer.score_answers(self.rows, prompts, completions, ids, environments)
        result = {"reward": total.mean().item()}
        for i, name in enumerate(self.trainer.reward_func_names):
            result[f"reward/{name}"] = torch.nanmean(per_func[:, i]).item()
        result["completion_length"] = sum(map(len, ids)) / len(ids)
        return {**result, **extra}

    def tool_answers(self, model):
        from rlhf_lab.algorithms.grpo.tools import resolve_environment, resolve_tools
        from rlhf_lab.evaluation.tool_use import tool_answers

        cfg = self.run.algorithm
        factory = resolve_environment(cfg.environment)[1] if cfg.environment is not None else None
        return tool_answers(
            model,
            self.tokenizer,
            self.rows,
            resolve_tools(cfg.tools),
            factory,
            self.max_new_tokens,
            cfg.max_turns,
            self.batch_size,
            self.bf16,
        )


class HeldOutScore(HeldOutAnswers):
    """Held-out evaluation of a PPO policy: the scores its greedy answers to held-out prompts earn.

    - score: mean total reward (reward model and/or reward functions, weighted; no KL penalty);
    - reward/<name>: mean of each reward (reward/reward_model is the reward model's score);
    - accuracy: fraction of answers equal to the row's `solution`, when the rows have one and accuracy is not
      already a reward (a check of the reward model's judgement that training never sees);
    - completion_length: mean answer length in tokens.
    """

    def evaluate(self, model) -> dict:
        from rlhf_lab.rewards.builtin import Accuracy

        texts, ids = self.answers(self.trainer.accelerator.unwrap_model(model).policy)
        total, per_reward = self.trainer.scorer(self.rows, texts, ids)
        result = {"score": total.mean().item()}
        for name, values in per_reward.items():
            result[f"reward/{name}"] = torch.nanmean(values).item()
        if "solution" in self.rows[0] and "accuracy" not in per_reward:
            correct = [c for c in Accuracy()(texts, [str(r["solution"]) for r in self.rows]) if c is not None]
            result["accuracy"] = sum(correct) / max(len(correct), 1)
        result["completion_length"] = sum(map(len, ids)) / len(ids)
        return result
