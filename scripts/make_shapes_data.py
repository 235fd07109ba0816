"""Build the bundled multimodal demo data (rlhf_lab/demo_data/shapes): small pictures of 1 to 4 coloured squares,
with the question how many there are, the right count as the chosen answer, a wrong count as the rejected one, and
the count as `solution` (for GRPO's accuracy reward). Deterministic: re-running it rewrites the same files.

    python scripts/make_shapes_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "rlhf_lab" / "demo_data" / "shapes"
SIZE = 56  # pixels a side: 4 vision tokens for a Qwen-VL model (14-pixel patches, 2x2 merge)
SQUARE = 12
COLOURS = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 180, 20), (150, 60, 190)]
WORDS = {1: "one square", 2: "two squares", 3: "three squares", 4: "four squares"}
TRAIN, VAL = 40, 8


def picture(count: int, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    cells = rng.sample([(x, y) for x in range(3) for y in range(3)], count)  # a 3x3 grid keeps squares apart
    for x, y in cells:
        left, top = 4 + x * 17 + rng.randint(0, 3), 4 + y * 17 + rng.randint(0, 3)
        draw.rectangle([left, top, left + SQUARE, top + SQUARE], fill=rng.choice(COLOURS))
    return image


def row(index: int, rng: random.Random) -> dict:
    count = rng.randint(1, 4)
    wrong = rng.choice([c for c in (count - 1, count + 1) if 1 <= c <= 4])
    name = f"images/{index:03d}.png"
    picture(count, rng).save(OUT / name, optimize=True)
    return {
        "messages": [
            {"role": "user", "content": "<image>How many squares are in the picture?"},
            {"role": "assistant", "content": f"I see {WORDS[count]}. The answer is {count}."},
        ],
        "rejected_response": f"I see {WORDS[wrong]}. The answer is {wrong}.",
        "images": [name],
        "solution": str(count),
    }


def main() -> None:
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    rows = [row(i, rng) for i in range(TRAIN + VAL)]
    for split, part in (("train", rows[:TRAIN]), ("val", rows[TRAIN:])):
        with (OUT / f"{split}.jsonl").open("w") as f:
            for r in part:
                f.write(json.dumps(r) + "\n")
    print(f"wrote {len(rows)} rows and images to {OUT}")


if __name__ == "__main__":
    main()
