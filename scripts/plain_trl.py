"""The same training as an rlhf_lab run, written directly on TRL: the baseline of scripts/bench.py.

    python scripts/plain_trl.py CONFIG.json

CONFIG names the algorithm (dpo, kto or grpo), the model directory, a data file already in TRL's format and the
settings (steps, batch, accumulation, max_length, LoRA rank, bf16, GRPO generations and completion length). The
script trains and writes RESULT.json (named in CONFIG): the time of each optimizer step, the logged token counts,
and the time from process start to the first step.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def process_start_time() -> float:
    import psutil

    return psutil.Process(os.getpid()).create_time()


def main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.step_times: list[float] = []
            self.tokens: list[float] = []
            self.train_start = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.train_start = time.time()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_times.append(time.time())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                self.tokens.append(float(logs["num_tokens"]))

    model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    data = load_dataset("json", data_files=cfg["data"], split="train")
    lora = LoraConfig(
        r=cfg["lora_r"], lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    common = dict(
        output_dir=cfg["output_dir"],
        max_steps=cfg["steps"],
        per_device_train_batch_size=cfg["batch"],
        gradient_accumulation_steps=cfg["accumulation"],
        learning_rate=5e-4,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        bf16=cfg["bf16"],
        use_cpu=True,
        seed=42,
    )
    clock = Clock()
    algorithm = cfg["algorithm"]
    if algorithm == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common, max_length=cfg["max_length"], beta=0.1),
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[clock],
        )
    elif algorithm == "kto":
        from trl import KTOConfig, KTOTrainer

        trainer = KTOTrainer(
            model=model,
            args=KTOConfig(**common, max_length=cfg["max_length"], beta=0.1),
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[clock],
        )
    elif algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer
        from trl.rewards import accuracy_reward

        def format_reward(completions, **kwargs):
            return [float(bool(c[0]["content"].strip())) for c in completions]

        args = GRPOConfig(
            **common,
            num_generations=cfg["num_generations"],
            max_completion_length=cfg["max_completion_length"],
            temperature=1.0,
            beta=0.04,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[accuracy_reward, format_reward],
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[clock],
        )
    else:
        raise SystemExit(f"unknown algorithm {algorithm}")
    trainer.train()
    result = {
        "step_times": clock.step_times,
        "tokens": clock.tokens,
        "train_start_at_s": round(clock.train_start - process_start_time(), 2),
        "first_step_at_s": round(clock.step_times[0] - process_start_time(), 2),
    }
    with open(cfg["result"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
