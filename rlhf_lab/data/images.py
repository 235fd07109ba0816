"""Images in rows (ms-swift's `images` list with `<image>` tags in the text): checked when the data loads, decoded
only when a batch needs them.

A row's image references stay small (an absolute path, or the encoded bytes of a saved dataset); pixels are decoded,
converted to RGB and resized within the model's pixel bounds one batch at a time, so a dataset of thousands of
images costs no decoding up front.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_lab.data.formats import ROW_SOURCE, RowProblem
from rlhf_lab.errors import DataError

IMAGE_TAG = "<image>"
IMAGES = "images"
REJECTED_IMAGES = "rejected_images"
_TAG_SPLIT = re.compile(f"({re.escape(IMAGE_TAG)})")
# Where each row format keeps its messages, and which of them may carry image tags (the prompt side).
_PROMPT_FIELDS = ("prompt", "messages")
_ANSWER_FIELDS = ("chosen", "rejected", "completion")


def count_tags(messages: list[dict]) -> int:
    return sum(m["content"].count(IMAGE_TAG) for m in messages if isinstance(m["content"], str))


def structured(messages: list[dict]) -> list[dict]:
    """String contents -> content blocks, with an image block where each `<image>` tag stood (the form TRL and
    the processors' chat templates read). Tags are dropped from the text, as ms-swift does."""
    out = []
    for m in messages:
        blocks = []
        for piece in _TAG_SPLIT.split(m["content"]):
            if piece == IMAGE_TAG:
                blocks.append({"type": "image"})
            elif piece:
                blocks.append({"type": "text", "text": piece})
        if not blocks:
            blocks.append({"type": "text", "text": ""})
        out.append({"role": m["role"], "content": blocks})
    return out


def _reference(value: Any, base: Path, index: int) -> str | dict:
    """A checked reference to one image: an absolute path, or {"bytes": ...} from a saved dataset."""
    field = f"images[{index}]"
    if isinstance(value, dict):
        if value.get("bytes"):
            return {"bytes": value["bytes"]}
        value = value.get("path")
    if not isinstance(value, str) or not value.strip():
        raise RowProblem(field, f"expected an image file path, got {value!r:.60}")
    if re.match(r"^[a-z][a-z0-9+.-]*://", value) or value.startswith("data:"):
        raise RowProblem(field, f"{value:.80} is not a local file; download it and give its path")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path  # relative paths are relative to the data file's folder, as ms-swift resolves them
    if not path.is_file():
        raise RowProblem(field, f"image file not found: {path}")
    _check_header(path, field)
    return str(path)


def _check_header(path: Path, field: str) -> None:
    """Reads only the file's header (no pixel decoding): catches files that are not images before a model loads."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            _ = image.size  # parses the header
    except (UnidentifiedImageError, OSError) as e:
        raise RowProblem(field, f"cannot read image {path}: {e.__class__.__name__}: {e}") from None


def attach_images(raw: dict, rows: list[dict], base: Path) -> None:
    """Check a raw row's `images` against its `<image>` tags and give its converted rows image references and
    structured messages. Rows without images keep plain-text messages."""
    images = raw.get(IMAGES)
    if images is None:
        images = []
    if not isinstance(images, list):
        raise RowProblem(IMAGES, f"expected a list of image paths, got {type(images).__name__}")
    rejected_images = raw.get(REJECTED_IMAGES)
    if rejected_images is not None and rejected_images != images:
        # TRL's preference collators give both answers of a pair the prompt's images.
        raise RowProblem(REJECTED_IMAGES, "differs from images; a pair is trained on one set of images, the prompt's")
    for row in rows:
        row.pop(REJECTED_IMAGES, None)
        tags = sum(count_tags(row.get(f, [])) for f in _PROMPT_FIELDS)
        for f in _ANSWER_FIELDS:
            if count_tags(row.get(f, [])):
                raise RowProblem(f, "has an <image> tag; images go in the prompt (system or user turns)")
        if tags != len(images):
            raise RowProblem(
                IMAGES,
                f"the messages have {tags} <image> tag(s) but the row has {len(images)} image(s); they must match",
            )
    if not images:
        for row in rows:
            row.pop(IMAGES, None)
        return
    refs = [_reference(v, base, i) for i, v in enumerate(images)]
    for row in rows:
        row[IMAGES] = refs
        for f in (*_PROMPT_FIELDS, *_ANSWER_FIELDS):
            if f in row:
                row[f] = structured(row[f])


def has_images(rows) -> bool:
    """Whether any row has images (Rows know it from their column counts)."""
    from rlhf_lab.data.rows import Rows

    if isinstance(rows, Rows):
        return rows.rows_with(IMAGES) > 0
    return any(row.get(IMAGES) for row in rows)


def with_image_slot(row: dict) -> None:
    """Give a text-only row of a dataset that has images the same shape (structured messages, empty image list), so
    that batches mixing both collate alike."""
    if IMAGES not in row:
        row[IMAGES] = []
        for f in (*_PROMPT_FIELDS, *_ANSWER_FIELDS):
            if f in row:
                row[f] = structured(row[f])


@dataclass(frozen=True)
class PixelBounds:
    """model.min_pixels / model.max_pixels: an image is scaled (aspect kept) to lie within them; None = no bound."""

    min_pixels: int | None = None
    max_pixels: int | None = None

    def fit(self, image):
        w, h = image.size
        area = w * h
        scale = 1.0
        if self.max_pixels is not None and area > self.max_pixels:
            scale = math.sqrt(self.max_pixels / area)
        elif self.min_pixels is not None and area < self.min_pixels:
            scale = math.sqrt(self.min_pixels / area)
        if scale == 1.0:
            return image
        rounding = math.ceil if scale > 1 else math.floor  # never end just outside the bound
        size = (max(1, rounding(w * scale)), max(1, rounding(h * scale)))
        return image.resize(size, resample=3)  # bicubic


def load_image(ref: str | dict, row: dict, bounds: PixelBounds):
    """Decode one image of a row to RGB within the pixel bounds; a failure names the row and the image."""
    from PIL import Image

    shown = ref if isinstance(ref, str) else "<embedded image bytes>"
    try:
        source = ref if isinstance(ref, str) else io.BytesIO(ref["bytes"])
        with Image.open(source) as image:
            decoded = image.convert("RGB")
    except (OSError, ValueError) as e:
        path, _, line = str(row.get(ROW_SOURCE, "?:")).rpartition(":")
        raise DataError(
            path,
            f"cannot decode image {shown} ({e.__class__.__name__}: {e})",
            line=int(line) if line.isdigit() else None,
            field=IMAGES,
        ) from None
    return bounds.fit(decoded)


def decoded(row: dict, bounds: PixelBounds) -> dict:
    """A copy of the row with its image references replaced by decoded images (the row itself is unchanged)."""
    return {**row, IMAGES: [load_image(ref, row, bounds) for ref in row.get(IMAGES, [])]}
