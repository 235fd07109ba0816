"""Make the bundled demo datasets (deterministic), split into train and held-out rows:
- arith_pairs: arithmetic questions with a correct chosen and a plausibly wrong rejected answer (DPO & co.);
- arith_kto: the same as labelled single answers (KTO);
- arith_math: one-step word problems as query-only rows with a `solution` column (GRPO);
- arith_chat: the same word problems with a worked answer (SFT rows, for GKD);
- word_pairs: word problems of the same kind, the worked answer chosen and one of four mistakes rejected
  (reward models: pairs whose difference a 135M model can learn, unlike arith_pairs' carry errors).

    python scripts/make_demo_data.py            # rewrites rlhf_lab/demo_data/
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "rlhf_lab" / "demo_data"
SEED = 1234
# 128 training pairs: one epoch is 16 steps of 8 pairs, a few minutes on a 2-core CPU.
N_TRAIN, N_VAL = 128, 96
# A short system turn replaces the chat template's longer default one: fewer tokens per step on a CPU.
SYSTEM = "Answer with the result."


def carry_mistake(rng: random.Random, a: int, b: int, op: str, right: int) -> int:
    """The mistakes a small model makes on two-digit sums and differences: a carry or borrow dropped or
    added in the tens (off by ten). SmolLM2-135M prefers the right answer only about half the time here."""
    units_carry = (a % 10 + b % 10 >= 10) if op == "+" else (a % 10 < b % 10)
    if units_carry:
        return right - 10 if op == "+" else right + 10
    return right + rng.choice((10, -10)) if right >= 20 else right + 10


def make_question(rng: random.Random) -> tuple[str, int, int, int, str]:
    op = rng.choice("+-")
    a, b = rng.randint(11, 99), rng.randint(11, 99)
    if op == "-" and b > a:
        a, b = b, a
    right = a + b if op == "+" else a - b
    return f"What is {a} {op} {b}?", a, b, right, op


def make_rows(rng: random.Random, n: int, seen: set[str]) -> list[dict]:
    rows = []
    while len(rows) < n:
        question, a, b, right, op = make_question(rng)
        if question in seen or right < 0:
            continue
        seen.add(question)
        wrong = carry_mistake(rng, a, b, op, right)
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


def to_kto(rng: random.Random, pairs: list[dict], both: bool) -> list[dict]:
    """KTO rows (messages + boolean label). both=False keeps one answer per question, chosen or rejected at
    random (unpaired, as KTO data usually is); both=True keeps both, so held-out accuracy can be measured."""
    rows = []
    for pair in pairs:
        good = {"messages": pair["messages"], "label": True, "solution": pair["solution"]}
        wrong = pair["messages"][:-1] + [{"role": "assistant", "content": pair["rejected_response"]}]
        bad = {"messages": wrong, "label": False, "solution": pair["solution"]}
        rows += [good, bad] if both else [rng.choice((good, bad))]
    return rows


# (subject, object, verb for adding, verb for taking away)
STORIES = [
    ("Tom", "apples", "buys", "eats"),
    ("Mia", "books", "gets", "gives away"),
    ("Sam", "marbles", "finds", "loses"),
    ("Ana", "stickers", "receives", "uses"),
    ("Leo", "cookies", "bakes", "sells"),
    ("Zoe", "pencils", "buys", "lends out"),
]


def word_problem(rng: random.Random) -> tuple[str, str, int]:
    """A one-step story problem with small numbers: SmolLM2-135M solves about one in eight when sampling,
    so groups of answers often differ in reward (the signal GRPO needs)."""
    name, things, add, take = rng.choice(STORIES)
    a, b = rng.randint(2, 12), rng.randint(2, 9)
    if rng.random() < 0.5 or b >= a:
        question = f"{name} has {a} {things} and {add} {b} more. How many {things} does {name} have now?"
        return question, f"{name} has {a} + {b} = {a + b} {things}.", a + b
    question = f"{name} has {a} {things} and {take} {b} of them. How many {things} does {name} have now?"
    return question, f"{name} has {a} - {b} = {a - b} {things}.", a - b


def word_rows(rng: random.Random, n: int, seen: set[str], with_answer: bool) -> list[dict]:
    rows = []
    while len(rows) < n:
        question, worked, result = word_problem(rng)
        if question in seen:
            continue
        seen.add(question)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        if with_answer:
            messages.append({"role": "assistant", "content": worked})
        rows.append({"messages": messages, "solution": str(result)})
    return rows


def story_parts(question: str) -> tuple[str, str, int, int, str]:
    """(name, things, a, b, op) of a word_problem() question."""
    words = question.split()
    name, a, things = words[0], int(words[2]), words[3]
    b = int(next(w for w in words[5:] if w.isdigit()))
    return name, things, a, b, "+" if "more." in question else "-"


def mistake(kind: int, rng: random.Random, question: str) -> str:
    """A wrong answer to a word problem, of one of four kinds (the mistakes SmolLM2-135M makes on them):
    0, the other operation worked out right; 1, the right operation with a slip of 1 or 2 in the result;
    2, a wrong count with no working; 3, the right working followed by an extra step that changes the count (as
    the model rambles on after answering), cut off mid-sentence half the time (as a length cap cuts it)."""
    name, things, a, b, op = story_parts(question)
    right = a + b if op == "+" else a - b
    if kind == 0:
        other = "-" if op == "+" else "+"
        x, y = (a, b) if a >= b or other == "+" else (b, a)
        return f"{name} has {x} {other} {y} = {x + y if other == '+' else x - y} {things}."
    slip = rng.choice((-2, -1, 1, 2)) if right > 2 else rng.choice((1, 2))
    if kind == 1:
        return f"{name} has {a} {op} {b} = {right + slip} {things}."
    if kind == 2:
        return f"{name} has {right + slip} {things}."
    step = rng.choice((a, b, rng.randint(1, 9)))
    extra = f"{name} has {right} + {step} = {right + step} {things} now."
    if rng.random() < 0.5:
        words = extra.split()
        extra = " ".join(words[: rng.randint(3, len(words) - 1)])
    return f"{name} has {a} {op} {b} = {right} {things}.{rng.choice((chr(10), ' '))}{extra}"


def restated(answer: str, separator: str) -> str:
    """The answer with a line that restates its own last number ("The answer is 7.")."""
    number = [w for w in answer.replace(".", " ").split() if w.lstrip("-").isdigit()][-1]
    return f"{answer}{separator}The answer is {number}."


def word_pairs(rng: random.Random, n: int, seen: set[str]) -> list[dict]:
    """Word problems with the worked answer chosen and a mistake rejected, the four kinds in turn. Half the pairs of
    the first three kinds restate their results in a last line, on both sides alike, so that a restatement says
    nothing by itself (a reward model that learned it would be paid for "The answer is 3." after any count).
    Against an extra step (kind 3), the chosen answer ends after its working."""
    rows = word_rows(rng, n, seen, with_answer=True)
    for i, row in enumerate(rows):
        question, worked = row["messages"][1]["content"], row["messages"][2]["content"]
        rejected = mistake(i % 4, rng, question)
        separator = rng.choice(("\n", " "))
        if i % 4 != 3 and rng.random() < 0.5:
            chosen, rejected = restated(worked, separator), restated(rejected, separator)
        else:
            chosen = worked
        row["messages"][2]["content"] = chosen
        row["rejected_response"] = rejected
    return rows


def write(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    val = make_rows(rng, N_VAL, seen)
    train = make_rows(rng, N_TRAIN, seen)
    write(train, OUT / "arith_pairs" / "train.jsonl")
    write(val, OUT / "arith_pairs" / "val.jsonl")
    print(f"wrote {len(train)} train and {len(val)} held-out pairs to {OUT / 'arith_pairs'}")

    kto_rng = random.Random(SEED + 1)
    kto_seen: set[str] = set()
    kto_val = to_kto(kto_rng, make_rows(kto_rng, N_VAL // 2, kto_seen), both=True)
    kto_train = to_kto(kto_rng, make_rows(kto_rng, N_TRAIN, kto_seen), both=False)
    write(kto_train, OUT / "arith_kto" / "train.jsonl")
    write(kto_val, OUT / "arith_kto" / "val.jsonl")
    print(f"wrote {len(kto_train)} train and {len(kto_val)} held-out KTO rows to {OUT / 'arith_kto'}")

    for name, with_answer, salt in (("arith_math", False, 2), ("arith_chat", True, 3)):
        word_rng = random.Random(SEED + salt)
        word_seen: set[str] = set()
        word_val = word_rows(word_rng, 48, word_seen, with_answer)
        word_train = word_rows(word_rng, 256, word_seen, with_answer)
        write(word_train, OUT / name / "train.jsonl")
        write(word_val, OUT / name / "val.jsonl")
        print(f"wrote {len(word_train)} train and {len(word_val)} held-out rows to {OUT / name}")
        if name == "arith_math":  # no question that GRPO and PPO are evaluated on trains a reward model
            math_val = {row["messages"][1]["content"] for row in word_val}

    pairs_rng = random.Random(SEED + 4)
    pairs_seen = set(math_val)
    pairs_val = word_pairs(pairs_rng, 96, pairs_seen)
    pairs_train = word_pairs(pairs_rng, 512, pairs_seen)
    write(pairs_train, OUT / "word_pairs" / "train.jsonl")
    write(pairs_val, OUT / "word_pairs" / "val.jsonl")
    print(f"wrote {len(pairs_train)} train and {len(pairs_val)} held-out pairs to {OUT / 'word_pairs'}")


if __name__ == "__main__":
    main()
