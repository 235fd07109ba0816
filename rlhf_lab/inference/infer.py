"""python -m rlhf_lab infer model=... data=FILE: the model's answer to every prompt of a file, batched, as JSON lines
beside the prompt (greedy unless temperature > 0); infer model=... chat=true talks with it in the terminal."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from rlhf_lab.config.verbs import InferConfig
from rlhf_lab.data.formats import ROW_SOURCE
from rlhf_lab.data.images import IMAGES, PixelBounds, decoded
from rlhf_lab.paths import sync_dir


def infer(cfg: InferConfig) -> str | None:
    if cfg.chat:
        chat(cfg)
        return None
    from rlhf_lab.data.load import read_source

    rows = read_source(cfg.data, "prompts", cfg.split, cfg.seed)  # bad rows stop here, before the model loads
    out = Path(cfg.out).expanduser() if cfg.out else _default_out(cfg)
    from rlhf_lab.inference.load import load_for_generation

    loaded = load_for_generation(cfg.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")  # complete answers only ever carry the final name
    started = time.time()
    try:
        with tmp.open("w") as f:
            for start in range(0, len(rows), cfg.max_batch_size):
                batch = [rows[i] for i in range(start, min(start + cfg.max_batch_size, len(rows)))]
                prompts = [_with_system(r["prompt"], cfg.system) for r in batch]
                for row, prompt, answer in zip(batch, prompts, generate(loaded, prompts, batch, cfg)):
                    extras = {k: v for k, v in row.items() if k not in ("prompt", IMAGES, ROW_SOURCE)}
                    record = {"prompt": prompt, "response": answer, **extras, "source": row[ROW_SOURCE]}
                    f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
        sync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    seconds = time.time() - started
    return f"{len(rows)} answers from {loaded.where} in {seconds:.1f} s written to {out}"


def _default_out(cfg: InferConfig) -> Path:
    model = Path(cfg.model.rstrip("/")).name or "model"
    data = Path(cfg.data.split("#")[0].rstrip("/")).stem or "data"
    return Path("outputs") / "infer" / f"{model}-{data}-{time.strftime('%Y-%m-%d_%H-%M-%S')}.jsonl"


def _with_system(prompt: list[dict], system: str | None) -> list[dict]:
    if system is None or (prompt and prompt[0]["role"] == "system"):
        return prompt
    return [{"role": "system", "content": system}, *prompt]


def generate(loaded, prompts: list[list[dict]], rows: list[dict], cfg) -> list[str]:
    """One batch of answers; rows carry the prompts' images (vision-language models). cfg: the sampling settings
    (max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed), as InferConfig and Sampling have them."""
    import torch

    model, processing, tokenizer = loaded.model, loaded.processing, loaded.tokenizer
    texts = [processing.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    images = [im for r in rows for im in decoded(r, PixelBounds()).get(IMAGES, [])] if loaded.vision else []
    if images:
        inputs = processing(text=texts, images=images, return_tensors="pt", padding=True)
    else:
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    inputs = inputs.to(model.device)
    sample = cfg.temperature > 0
    options = dict(max_new_tokens=cfg.max_new_tokens, do_sample=sample, repetition_penalty=cfg.repetition_penalty)
    if sample:
        options.update(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or None)
        torch.manual_seed(cfg.seed)
    else:  # the model's generation config may ask for sampling; greedy means greedy
        options.update(temperature=None, top_p=None, top_k=None)
    with torch.no_grad():
        out = model.generate(**inputs, **options, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def chat(cfg: InferConfig, stdin=None, stdout=None) -> None:
    """A conversation in the terminal: each line is the user's turn; /clear starts over, /exit (or Ctrl-D) ends."""
    from rlhf_lab.inference.load import load_for_generation

    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    loaded = load_for_generation(cfg.model)
    print(f"chatting with {loaded.where}; /clear starts over, /exit ends", file=stdout, flush=True)
    history = _with_system([], cfg.system)
    while True:
        print(">>> ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line or line.strip() == "/exit":
            print(file=stdout, flush=True)
            return
        text = line.strip()
        if not text:
            continue
        if text == "/clear":
            history = _with_system([], cfg.system)
            print("(cleared)", file=stdout, flush=True)
            continue
        history.append({"role": "user", "content": text})
        (answer,) = generate(loaded, [history], [{}], cfg)
        history.append({"role": "assistant", "content": answer})
        print(answer.strip(), file=stdout, flush=True)
