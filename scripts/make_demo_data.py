"""Make the bundled demo datasets (deterministic): arithmetic questions with a correct chosen answer
and a plausibly wrong rejected one, in ms-swift's pair format, split into train and held-out rows.

    python scripts/make_demo_data.py            # rewrites rlhf_lab/demo_data/
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "rlhf_lab" / "demo_data"
SEED = 1234
N_TRAIN, N_VAL = 320, 64
# A short system turn replaces the chat template's longer default one: fewer tokens per step on a CPU.
SYSTEM = "Answer with the result."


def wrong_answer(rng: random.Random, a: int, b: int, op: str, right: int) -> int:
    """Mistakes a small model plausibly makes: a slipped digit, a dropped carry, the wrong operation."""
    candidates = {right + 1, right - 1, right + 10, right - 10}
    if op == "+":
        candidates |= {a * b if a * b < 200 else right + 2, abs(a - b)}
    elif op == "-":
        candidates |= {a + b}
    else:
        candidates |= {a + b, right + a, right - b}
    candidates.discard(right)
    return rng.choice(sorted(c for c in candidates if c >= 0))


def make_question(rng: random.Random) -> tuple[str, int, int, int, str]:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    else:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        if op == "-" and b > a:
            a, b = b, a
    right = {"+": a + b, "-": a - b, "*": a * b}[op]
    sym = {"+": "+", "-": "-", "*": "×"}[op]
    return f"What is {a} {sym} {b}?", a, b, right, op


def make_rows(rng: random.Random, n: int, seen: set[str]) -> list[dict]:
    rows = []
    while len(rows) < n:
        question, a, b, right, op = make_question(rng)
        if question in seen:
            continue
        seen.add(question)
        wrong = wrong_answer(rng, a, b, op, right)
        expr = question[len("What is ") : -1]
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": f"{expr} = {right}."},
                ],
                "rejected_response": f"{expr} = {wrong}.",
                "solution": str(right),
            }
        )
    return rows


def write(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    train = make_rows(rng, N_TRAIN, seen)
    val = make_rows(rng, N_VAL, seen)
    write(train, OUT / "arith_pairs" / "train.jsonl")
    write(val, OUT / "arith_pairs" / "val.jsonl")
    print(f"wrote {len(train)} train and {len(val)} held-out pairs to {OUT / 'arith_pairs'}")


if __name__ == "__main__":
    main()
