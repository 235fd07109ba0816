"""Vision-language runs: rows with images, the tiny Qwen2-VL, frozen vision parts, and every algorithm that reads
images training on the bundled shapes data."""

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from conftest import read_summary, run_cli
from PIL import Image

from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.data.images import PixelBounds
from rlhf_lab.data.load import load_file, load_splits
from rlhf_lab.errors import ConfigError, DataError

SHAPES = Path(__file__).resolve().parent.parent / "rlhf_lab" / "demo_data" / "shapes"
VL_TINY = [
    "model=tiny_vl",
    "dataset=shapes",
    "train.max_steps=2",
    "train.per_device_train_batch_size=2",
    "train.gradient_accumulation_steps=1",
    "train.logging_steps=1",
    "dataset.max_samples=8",
]
OFFLINE = ["dpo", "kto", "cpo", "simpo", "orpo", "rm"]


def write_rows(folder: Path, rows: list[dict], name: str = "data.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pair(content: str, images: list, chosen: str = "Two.", rejected: str = "Three.") -> dict:
    return {
        "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": chosen}],
        "rejected_response": rejected,
        "images": images,
    }


def picture(path: Path, size=(40, 30), colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


# ---- rows with images: checked at load time, decoded per batch -------------------------------------------------


def test_image_paths_resolve_against_the_data_file_and_tags_become_image_blocks(tmp_path, monkeypatch):
    picture(tmp_path / "data" / "img" / "a.png")
    path = write_rows(tmp_path / "data", [pair("Look <image> here: how many?", ["img/a.png"])])
    monkeypatch.chdir(tmp_path)  # not the data file's folder
    row = load_file(path, "pairs", lenient=False, dropped=[])[0]
    assert row["images"] == [str(tmp_path / "data" / "img" / "a.png")]
    assert row["prompt"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look "},
                {"type": "image"},
                {"type": "text", "text": " here: how many?"},
            ],
        }
    ]
    assert row["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": "Two."}]}]


@pytest.mark.parametrize(
    "row, field, message",
    [
        (pair("<image><image>Compare.", ["a.png"]), "images", "2 <image> tag(s) but the row has 1 image(s)"),
        (pair("How many?", ["a.png"]), "images", "0 <image> tag(s) but the row has 1 image(s)"),
        (pair("<image>How many?", ["missing.png"]), "images[0]", "image file not found: {dir}/missing.png"),
        (pair("<image>How many?", ["not_an_image.png"]), "images[0]", "cannot read image {dir}/not_an_image.png"),
        (pair("<image>How many?", ["http://example.com/a.png"]), "images[0]", "is not a local file"),
        (pair("<image>How many?", "a.png"), "images", "expected a list of image paths"),
        (pair("<image>How many?", ["a.png"], chosen="<image>Two."), "chosen", "images go in the prompt"),
    ],
)
def test_bad_images_name_the_file_line_field_and_path(tmp_path, row, field, message):
    picture(tmp_path / "a.png")
    (tmp_path / "not_an_image.png").write_text("this is text")
    good = pair("<image>How many?", ["a.png"])
    path = write_rows(tmp_path, [good, good, row])
    with pytest.raises(DataError) as err:
        load_file(path, "pairs", lenient=False, dropped=[])
    text = err.value.one_line()
    assert f"{path}:3" in text and f"field '{field}'" in text
    assert message.format(dir=tmp_path) in text


def test_algorithms_that_do_not_read_images_refuse_them_naming_the_row(tmp_path):
    picture(tmp_path / "a.png")
    path = write_rows(tmp_path, [pair("<image>How many?", ["a.png"])])
    with pytest.raises(DataError) as err:
        load_splits(DatasetConfig(path=str(path)), "sft", seed=0, images=False)
    assert f"{path}:1" in str(err.value) and "does not read images" in str(err.value) and "grpo" in str(err.value)


def test_text_rows_beside_image_rows_get_the_same_shape(tmp_path):
    picture(tmp_path / "a.png")
    path = write_rows(tmp_path, [pair("<image>How many?", ["a.png"]), pair("How many, no picture?", [])])
    rows = load_splits(DatasetConfig(path=str(path)), "pairs", seed=0, images=True).train
    assert rows[1]["images"] == [] and isinstance(rows[1]["prompt"][0]["content"], list)


@pytest.mark.parametrize("algorithm", ["dpo", "kto"])
def test_precomputed_reference_log_probs_are_refused_for_image_rows(compose, tmp_path, algorithm):
    from rlhf_lab.config.run import build_run

    cfg = build_run(compose([f"algorithm={algorithm}", "algorithm.precompute_ref_log_probs=true"]), tmp_path).algorithm
    cfg.check_data([{"images": []}])  # text rows are fine
    with pytest.raises(ConfigError, match="precompute_ref_log_probs"):
        cfg.check_data([{"images": ["x.png"]}])


def test_images_are_decoded_only_when_a_batch_needs_them(tmp_path, monkeypatch):
    from rlhf_lab.vision.batches import RowsWithImages

    for i in range(6):
        picture(tmp_path / f"{i}.png")
    path = write_rows(tmp_path, [pair("<image>How many?", [f"{i}.png"]) for i in range(6)])
    decodes = []
    convert = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda self, *a, **k: decodes.append(1) or convert(self, *a, **k))
    rows = load_splits(DatasetConfig(path=str(path)), "pairs", seed=0, images=True).train
    assert decodes == []  # loading checked six headers and decoded nothing
    collate = RowsWithImages(rows, PixelBounds(max_pixels=400), inner=lambda batch: batch)
    batch = collate([{"index": 1}, {"index": 4}])
    assert len(decodes) == 2 and batch[0]["images"][0].size == (23, 17)  # 40x30 scaled within 400 pixels
    assert rows[1]["images"][0].endswith("1.png")  # the rows keep their references


def test_pixel_bounds_keep_the_aspect_ratio():
    big = PixelBounds(max_pixels=10_000).fit(Image.new("RGB", (400, 300)))
    assert big.size[0] * big.size[1] <= 10_000 and abs(big.size[0] / big.size[1] - 4 / 3) < 0.02
    small = PixelBounds(min_pixels=10_000).fit(Image.new("RGB", (50, 25)))
    assert small.size[0] * small.size[1] >= 10_000 and abs(small.size[0] / small.size[1] - 2) < 0.02
    same = Image.new("RGB", (60, 60))
    assert PixelBounds(min_pixels=100, max_pixels=10_000).fit(same) is same


def test_an_image_that_breaks_after_loading_is_a_data_error_naming_the_row(tmp_path):
    from rlhf_lab.vision.batches import RowsWithImages

    image = picture(tmp_path / "a.png")
    path = write_rows(tmp_path, [pair("<image>How many?", ["a.png"])])
    rows = load_splits(DatasetConfig(path=str(path)), "pairs", seed=0, images=True).train
    image.write_bytes(image.read_bytes()[:40])  # truncated while the run was going
    with pytest.raises(DataError) as err:
        RowsWithImages(rows, PixelBounds(), inner=lambda batch: batch)([{"index": 0}])
    assert f"{path}:1" in str(err.value) and f"cannot decode image {image}" in str(err.value)


# ---- the tiny vision-language model --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_vl_dir():
    from rlhf_lab.models.tiny_vl import ensure_tiny_vl

    return ensure_tiny_vl()


def _trainable(compose, tmp_path, overrides):
    """Names of the parameters a run would train (LoRA wrapped as the trainers wrap it)."""
    from peft import get_peft_model

    from rlhf_lab.config.run import build_run
    from rlhf_lab.data.load import load_splits
    from rlhf_lab.training.pipeline import load_inputs

    run = build_run(compose(["model=tiny_vl", "dataset=shapes", *overrides]), tmp_path)
    inputs = load_inputs(run, load_splits(run.dataset, "pairs", 0, images=True), False)
    model = get_peft_model(inputs.model, inputs.peft_config) if inputs.peft_config else inputs.model
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _parts(names):
    vit = any("visual.blocks" in n or "patch_embed" in n for n in names)
    aligner = any("visual.merger" in n for n in names)
    language = any("language_model" in n for n in names)
    return vit, aligner, language


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ([], (False, False, True)),
        (["tuner.freeze_vit=false"], (True, False, True)),
        (["tuner.freeze_aligner=false"], (False, True, True)),
        (["tuner=full"], (False, False, True)),
        (["tuner=full", "tuner.freeze_aligner=false"], (False, True, True)),
        (["tuner=full", "tuner.freeze_vit=false", "tuner.freeze_aligner=false"], (True, True, True)),
    ],
)
def test_freeze_vit_and_aligner_decide_which_parameters_train(compose, tmp_path, tiny_vl_dir, overrides, expected):
    names = _trainable(compose, tmp_path, overrides)
    assert _parts(names) == expected
    if "tuner=full" not in overrides:
        assert names and all("lora_" in n for n in names)  # adapters only, and none on frozen parts


def _pair_batch(tiny_vl_dir, rows, max_length=None):
    from transformers import AutoProcessor

    from rlhf_lab.vision.batches import pair_collator

    processor = AutoProcessor.from_pretrained(tiny_vl_dir)
    collate = pair_collator(processor, rows, PixelBounds(), max_length)
    return processor, collate([{"index": i} for i in range(len(rows))])


def test_vision_logps_equal_one_unpadded_sequence_at_a_time_and_depend_on_the_image(tiny_vl_dir):
    from transformers import AutoModelForImageTextToText

    from rlhf_lab.vision.batches import sequence_logps, token_logps

    rows = load_splits(DatasetConfig(path=str(SHAPES / "train.jsonl"), max_samples=3), "pairs", 0, images=True).train
    processor, batch = _pair_batch(tiny_vl_dir, rows)
    model = AutoModelForImageTextToText.from_pretrained(tiny_vl_dir).eval()
    with torch.no_grad():
        logps, _ = token_logps(model, batch)
        batched = sequence_logps(logps, batch["completion_mask"][:, 1:], average=False)
        # The formula, one sequence at a time, with no padding: sum of log p(answer token | everything before).
        for i, row in enumerate(rows):
            for half, side in enumerate(("chosen", "rejected")):
                image = Image.open(row["images"][0]).convert("RGB")
                prompt = processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
                answer = processor.apply_chat_template(row["prompt"] + row[side], tokenize=False)[len(prompt) :]
                enc = processor(text=[prompt + answer], images=[image], return_tensors="pt", add_special_tokens=False)
                n_prompt = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].size(1)
                logits = model(**enc).logits[0, :-1]
                targets = enc["input_ids"][0, 1:]
                expected = torch.log_softmax(logits, -1).gather(-1, targets[:, None])[n_prompt - 1 :].sum()
                assert torch.allclose(batched[half * len(rows) + i], expected, atol=1e-4)
        # Another picture, same text: the answers' log-probs change, so the pixels reach the model.
        other = dict(batch, pixel_values=torch.flip(batch["pixel_values"], dims=[0]) * 0.5)
        moved, _ = token_logps(model, other)
        assert not torch.allclose(sequence_logps(moved, batch["completion_mask"][:, 1:], False), batched, atol=1e-4)


# ---- every algorithm that reads images, on the bundled shapes data ----------------------------------------------


@pytest.fixture(scope="module")
def vision_runs(tmp_path_factory, tiny_vl_dir):
    tmp = tmp_path_factory.mktemp("vision")
    # fp32, so that a reloaded model's scores can be compared with the run's to 1e-4 (bf16 rounds at ~4e-3)
    sweep = run_cli(
        ["-m", *VL_TINY, f"algorithm={','.join(OFFLINE)}", "train.bf16=false", f"hydra.sweep.dir={tmp}/sweep"], cwd=tmp
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    grpo = run_cli(
        # accuracy and format are 0 for every answer of a random model; answer length varies, so GRPO learns
        [
            *VL_TINY,
            "algorithm=grpo",
            "algorithm.num_generations=2",
            "algorithm.max_completion_length=8",
            "algorithm.reward_funcs=[accuracy,helpers.custom_rewards:Scaled]",
            f"hydra.run.dir={tmp}/grpo",
        ],
        cwd=tmp,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent)},
    )
    assert grpo.returncode == 0, grpo.stderr[-3000:]
    rows = list(csv.DictReader((tmp / "sweep" / "sweep_summary.csv").open()))
    runs = {r["algorithm"]: tmp / "sweep" / r["job"] for r in rows}
    runs["grpo"] = tmp / "grpo"
    return runs


@pytest.mark.parametrize("algorithm", [*OFFLINE, "grpo"])
def test_each_algorithm_trains_two_steps_on_images(vision_runs, algorithm):
    s = read_summary(vision_runs[algorithm])
    assert s["status"] == "completed" and s["algorithm"] == algorithm and s["global_steps"] == 2
    assert math.isfinite(s["train_loss"])
    for phase in ("eval_before", "eval_after"):
        values = [v for v in s[phase].values() if isinstance(v, float)]
        assert values and all(math.isfinite(v) for v in values)
    saved = Path(s["saved_model"])
    assert (saved / "preprocessor_config.json").is_file() or (saved / "processor_config.json").is_file()


@pytest.mark.parametrize("algorithm", ["dpo", "cpo", "orpo", "grpo"])
def test_saved_adapter_reloads_on_the_vision_model_and_changed_it(vision_runs, algorithm, tiny_vl_dir):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    model = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(tiny_vl_dir), str(vision_runs[algorithm] / "adapter")
    )
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    assert not torch.allclose(trained, base)


def test_vision_reward_model_reloads_and_scores_images_as_evaluated(vision_runs, compose, tmp_path):
    from rlhf_lab.config.run import build_run
    from rlhf_lab.evaluation.reward import vision_scores
    from rlhf_lab.models.load import load_causal_lm

    saved = vision_runs["rm"] / "model"
    run = build_run(compose(["model=tiny_vl", "dataset=shapes", "algorithm=rm"]), tmp_path)
    model = load_causal_lm(run.model, False, name_or_path=str(saved), head="reward").eval()
    rows = load_splits(run.dataset, "pairs", 0, images=True).val
    from transformers import AutoProcessor

    from rlhf_lab.vision.batches import pair_collator

    collate = pair_collator(AutoProcessor.from_pretrained(saved), rows, PixelBounds(), run.train.max_length)
    s = vision_scores(model, collate, 4, False)  # fp32, as the runs evaluated
    after = read_summary(vision_runs["rm"])["eval_after"]
    assert abs(s[0::2].mean().item() - after["score_chosen"]) < 1e-4
    assert abs(s[1::2].mean().item() - after["score_rejected"]) < 1e-4


def test_vision_reward_loss_equals_its_formula_with_margins(compose, tmp_path, tiny_vl_dir):
    from conftest import build_trainer

    from rlhf_lab.vision.batches import model_inputs

    rows = [json.loads(line) for line in (SHAPES / "train.jsonl").read_text().splitlines()[:4]]
    for i, row in enumerate(rows):
        row["margin"], row["images"] = 0.5 * i, [str(SHAPES / row["images"][0])]
    path = write_rows(tmp_path / "data", rows)
    trainer = build_trainer(
        compose,
        tmp_path,
        [
            "model=tiny_vl",
            "algorithm=rm",
            "dataset=custom",
            f"dataset.path={path}",
            "algorithm.center_rewards_coefficient=0.01",
        ],
    )
    batch = trainer.data_collator([{"index": i} for i in range(4)])
    assert batch["margin"].tolist() == [0.0, 0.5, 1.0, 1.5] and batch["pixel_values"].size(0) > 0
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
        chosen, rejected = trainer.model(**model_inputs(batch)).logits[:, 0].chunk(2)
    expected = -torch.nn.functional.logsigmoid(chosen - rejected - batch["margin"]).mean()
    expected = expected + 0.01 * ((chosen + rejected) ** 2).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_grpo_generates_from_the_images(compose, tmp_path, tiny_vl_dir):
    from conftest import build_trainer

    trainer = build_trainer(
        compose,
        tmp_path,
        [
            "model=tiny_vl",
            "dataset=shapes",
            "algorithm=grpo",
            "algorithm.max_completion_length=4",
            "train.per_device_train_batch_size=4",
            "algorithm.num_generations=2",
        ],
    )
    rows = [dict(trainer.train_dataset[i]) for i in (0, 0, 1, 1)]
    assert isinstance(rows[0]["images"][0], str)  # references until generation
    batch = trainer._generate_and_score_completions(rows)
    assert batch["pixel_values"].size(0) > 0 and batch["image_grid_thw"].size(0) == 4


def test_images_with_a_text_only_model_fail_before_loading_it(tmp_path, tiny_model_dir):
    proc = run_cli(["model=tiny", "dataset=shapes", "train.max_steps=1", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("model error:") and "text-only model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_image_row_stops_the_cli_with_one_line(tmp_path):
    shutil.copy(SHAPES / "images" / "000.png", tmp_path / "a.png")
    path = write_rows(tmp_path, [pair("<image>How many?", ["a.png"]), pair("<image>How many?", ["b.png"])])
    proc = run_cli(
        ["model=tiny_vl", "dataset=custom", f"dataset.path={path}", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"data error: {path}:2: field 'images[0]': image file not found: {tmp_path}/b.png")


# ---- GKD on images: student and teacher both see the pictures ---------------------------------------------------

GKD_VL = [
    *VL_TINY,
    "algorithm=gkd",
    "algorithm.teacher_model=tiny_vl",
    "model.num_hidden_layers=1",  # a one-layer student of the two-layer teacher
    "algorithm.max_completion_length=6",
]


def test_gkd_loss_on_images_is_trls_divergence_with_the_images_in_both_forwards(compose, tmp_path, tiny_vl_dir):
    from conftest import build_trainer, move_off_reference
    from trl.experimental.gkd import GKDTrainer

    from rlhf_lab.vision.batches import image_inputs

    trainer = build_trainer(compose, tmp_path, [*GKD_VL, "algorithm.lmbda=0", "train.bf16=false"])
    move_off_reference(trainer.model)  # the student differs from the teacher (LoRA starts at zero)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "pixel_values" in batch and (batch["labels"] != -100).any()
    trainer.model.eval()
    loss = trainer.compute_loss(trainer.model, batch)
    text = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    images = image_inputs(batch, batch["input_ids"].size(1))
    with torch.no_grad():
        student = trainer.model(**text, **images).logits[:, :-1]
        teacher = trainer.teacher_model(**text, **images).logits[:, :-1]
        other = {**images, "pixel_values": torch.zeros_like(images["pixel_values"])}
        other_picture = trainer.model(**text, **other).logits[:, :-1]
    expected = GKDTrainer.generalized_jsd_loss(student, teacher, labels=batch["labels"][:, 1:], beta=0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4) and loss.item() > 0
    # the answers' tokens only: prompts (image tokens included) are not distilled
    prompt_width = batch["prompts"].size(1)
    assert (batch["labels"][:, :prompt_width] == -100).all()
    # the picture reaches the answer's logits: another picture, other predictions
    answer = batch["labels"][:, 1:] != -100
    assert (student[answer] - other_picture[answer]).abs().max().item() > 1e-4


@pytest.fixture(scope="module")
def gkd_vision_runs(tmp_path_factory, tiny_vl_dir):
    tmp = tmp_path_factory.mktemp("gkd_vl")
    proc = run_cli(
        ["-m", *GKD_VL, "algorithm.lmbda=0,1", "algorithm.seq_kd=false,true", f"hydra.sweep.dir={tmp}/sweep"],
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {int(p.name): read_summary(p) for p in (tmp / "sweep").iterdir() if p.name.isdigit()}


def test_gkd_trains_on_images_off_policy_on_policy_and_on_teacher_answers(gkd_vision_runs):
    # jobs: 0 lmbda=0 (dataset answers), 1 lmbda=0 seq_kd (teacher answers), 2 and 3 lmbda=1 (student answers)
    sources = {job: s["batch_sources"] for job, s in gkd_vision_runs.items()}
    assert sources[0] == {"dataset": 2, "teacher": 0, "student": 0}
    assert sources[1] == {"dataset": 0, "teacher": 2, "student": 0}
    assert sources[2]["student"] == 2 and sources[3]["student"] == 2
    for s in gkd_vision_runs.values():
        assert s["status"] == "completed"
        assert s["eval_before"]["divergence"] > 0 and math.isfinite(s["eval_after"]["divergence"])


def test_gkd_with_a_text_teacher_on_image_rows_is_one_line(tmp_path, tiny_vl_dir, tiny_model_dir):
    proc = run_cli([*GKD_VL, "algorithm.teacher_model=tiny", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "is a text-only model, but the rows have images" in proc.stderr.strip().splitlines()[-1]
