"""Speed-ups change nothing that is learned: the packed DPO layout against TRL's, GRPO's generation mode."""

from contextlib import contextmanager, nullcontext
from unittest.mock import patch

import pytest
import torch
from conftest import GRPO_TINY, TINY, build_trainer, move_off_reference

from rlhf_lab.algorithms.grpo.trainer import LabGRPOTrainer
from rlhf_lab.patches.scored_positions import score_every_position, score_only_labelled_positions
from rlhf_lab.patches.shared_prompt import CHOSEN, PAD, PROMPT, REJECTED, pack_pairs

# ---- the packed layout, on a hand-made TRL batch ----


def trl_batch(pairs):
    """TRL's DPO collation: [prompt + chosen rows; prompt + rejected rows], right-padded, prompt labels -100."""
    rows = [p + c for p, c, _ in pairs] + [p + r for p, _, r in pairs]
    prompt_lengths = [len(p) for p, _, _ in pairs] * 2
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    labels = ids.clone()
    for i, n in enumerate(prompt_lengths):
        labels[i, :n] = -100
    labels[mask == 0] = -100
    return ids, mask, labels


def test_a_pair_packs_into_one_row_with_its_own_contexts():
    ids, mask, labels = trl_batch([([5, 6, 7], [8, 9], [10, 11, 12]), ([5, 6], [13], [14, 15])])
    packed = pack_pairs(ids, mask, labels)
    assert packed.input_ids[0].tolist() == [5, 6, 7, 8, 9, 7, 10, 11, 12]
    assert packed.position_ids[0].tolist() == [0, 1, 2, 3, 4, 2, 3, 4, 5]
    # The last prompt token predicts each answer's first token; an answer's last token predicts nothing.
    assert packed.shift_labels[0].tolist() == [-100, -100, 8, 9, -100, 10, 11, 12, -100]
    assert packed.segments[1].tolist() == [PROMPT, CHOSEN, CHOSEN, REJECTED, REJECTED, REJECTED, PAD, PAD, PAD]
    allowed = packed.attention_mask("bool", torch.float32)[0, 0]
    seen = lambda q: torch.nonzero(allowed[q]).flatten().tolist()  # noqa: E731
    assert seen(4) == [0, 1, 2, 3, 4]  # chosen: the whole prompt and itself
    assert seen(5) == [0, 1, 5]  # the repeated prompt token: the prompt before it, not the chosen answer
    assert seen(8) == [0, 1, 5, 6, 7, 8]
    additive = packed.attention_mask("additive", torch.float32)[0, 0]
    assert torch.equal(additive == 0, allowed)
    # Padding queries see only themselves, so no attention row is empty.
    second = packed.attention_mask("bool", torch.float32)[1, 0]
    assert second[7].nonzero().flatten().tolist() == [7]


def test_unpacking_puts_each_answer_token_where_trl_scores_it():
    ids, mask, labels = trl_batch([([5, 6, 7], [8, 9], [10, 11, 12]), ([5, 6], [13], [14, 15])])
    packed = pack_pairs(ids, mask, labels)
    # Packed "outputs" that are the predicted token itself: unpacked, they must equal TRL's shifted labels.
    out = packed.unpack(packed.shift_labels.clamp(min=0).float())
    expected = labels[:, 1:].clamp(min=0).float()
    assert torch.equal(out, expected)


@pytest.mark.parametrize("change", ["prompt", "odd"])
def test_rows_that_are_not_pairs_sharing_a_prompt_keep_trl_layout(change):
    pairs = [([5, 6, 7], [8, 9], [10, 11])]
    ids, mask, labels = trl_batch(pairs)
    if change == "prompt":
        ids[1, 0] = 4
    else:
        ids, mask, labels = ids[:1], mask[:1], labels[:1]
    assert pack_pairs(ids, mask, labels) is None


# ---- first-step losses: fast default against TRL's own layout ----


@contextmanager
def trl_layout():
    """TRL's fused head as shipped: the LM head over every position, labelled or not."""
    score_every_position()
    try:
        yield
    finally:
        score_only_labelled_positions()


def first_step(compose, tmp_path, overrides, plain=False, bf16=False):
    """Loss, gradients and logged metrics of the first DPO batch, with the policy moved off its reference.
    plain: without rlhf_lab's speed-ups (prompt sharing, scoring only labelled positions)."""
    torch.manual_seed(0)
    overrides = [*TINY, "algorithm=dpo", "train.per_device_train_batch_size=4", *overrides]
    if plain:
        overrides.append("algorithm.share_prompt=false")
    trainer = build_trainer(compose, tmp_path, overrides, bf16=bf16)
    batch = next(iter(trainer.get_train_dataloader()))
    move_off_reference(trainer.model)
    trainer.model.train()
    # Trainer gets bf16 autocast from accelerate, which wraps the forward only when training starts.
    with trl_layout() if plain else nullcontext(), trainer.accelerator.autocast():
        loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return loss.item(), grads, metrics


@pytest.mark.parametrize(
    "setting",
    [
        [],
        ["model.attn_implementation=eager"],
        ["tuner=full"],
        ["algorithm.loss_type=[sigmoid,ipo]", "algorithm.rpo_alpha=0.5"],
    ],
    ids=["lora-sdpa", "eager", "full", "ipo-rpo"],
)
def test_fast_dpo_learns_what_plain_trl_learns(compose, tmp_path, tiny_model_dir, setting):
    fast = first_step(compose, tmp_path / "fast", setting)
    plain = first_step(compose, tmp_path / "plain", setting, plain=True)
    # fp32 sums the same terms in another order (other row lengths, other attention tiles): measured differences
    # are 2e-7 on the loss and 1.5e-6 on gradients of size 0.1 to 1; the bounds leave ~10x room.
    assert fast[0] == pytest.approx(plain[0], rel=1e-5, abs=1e-6)
    assert fast[1].keys() == plain[1].keys() and fast[1]
    for name in plain[1]:
        torch.testing.assert_close(fast[1][name], plain[1][name], rtol=1e-4, atol=2e-5, msg=name)
    for key, value in plain[2].items():
        assert fast[2][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_fast_dpo_in_bf16_autocast_stays_within_bf16_rounding_of_plain_fp32(compose, tmp_path, tiny_model_dir):
    # What train.bf16=auto gives where bf16 is fast (AMX CPUs, recent GPUs): bf16 matmuls, fp32 weights and losses.
    fast = first_step(compose, tmp_path / "fast", [], bf16=True)
    plain = first_step(compose, tmp_path / "plain", [], plain=True)
    # bf16 keeps 8 significant bits: each product is rounded by up to 2^-9 (0.2%), with fp32 sums. Measured here:
    # summed answer log-probs 3e-5 relative, the loss 4e-4, gradients (differences of chosen and rejected terms of
    # similar size) 15% relative at the median but pointing the same way (cosine >= 0.98). Bounds: ~5x room.
    assert fast[0] == pytest.approx(plain[0], rel=2e-3)
    assert fast[0] != plain[0]  # bf16 really ran
    for key in ("logps/chosen", "logps/rejected"):
        assert fast[2][key] == pytest.approx(plain[2][key], rel=2e-4), key
    cosines = [
        torch.nn.functional.cosine_similarity(fast[1][n].flatten(), plain[1][n].flatten(), dim=0).item()
        for n in plain[1]
    ]
    assert min(cosines) > 0.9


def kto_first_step(compose, tmp_path, plain: bool):
    """Loss, gradients and KTO metrics of the first batch, the policy moved off its reference; plain: TRL's layout
    (the LM head over every position)."""
    torch.manual_seed(0)
    trainer = build_trainer(
        compose, tmp_path, [*TINY, "algorithm=kto", "dataset=arith_kto", "train.per_device_train_batch_size=4"]
    )
    batch = next(iter(trainer.get_train_dataloader()))
    move_off_reference(trainer.model)
    trainer.model.train()
    import trl.trainer.utils as trl_utils

    head_rows, apply = [], trl_utils._ChunkedLogProbFunction.apply

    def counted(hidden, *args):
        head_rows.append(hidden.shape[0])
        return apply(hidden, *args)

    with trl_layout() if plain else nullcontext(), patch.object(trl_utils._ChunkedLogProbFunction, "apply", counted):
        loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    answers = int(batch["completion_mask"].sum() + batch["KL_completion_mask"].sum())
    return loss.item(), grads, {k: v[-1] for k, v in trainer._metrics["train"].items()}, sum(head_rows), answers


def test_kto_scoring_only_answers_learns_what_every_position_learns(compose, tmp_path, tiny_model_dir):
    fast = kto_first_step(compose, tmp_path / "fast", plain=False)
    plain = kto_first_step(compose, tmp_path / "plain", plain=True)
    # The same positions' log-probs from the same hidden states, in fp32 chunks of another shape: measured
    # differences are at the last float bit; the bounds are those of the DPO comparison above.
    assert fast[0] == pytest.approx(plain[0], rel=1e-5, abs=1e-6)
    assert fast[1].keys() == plain[1].keys() and fast[1]
    for name in plain[1]:
        torch.testing.assert_close(fast[1][name], plain[1][name], rtol=1e-4, atol=2e-5, msg=name)
    assert fast[2]["kl"] == pytest.approx(plain[2]["kl"], rel=1e-4, abs=1e-6)
    assert fast[2]["logps/chosen"] == pytest.approx(plain[2]["logps/chosen"], rel=1e-5)
    # Four passes (policy and reference, over answers and KL answers): the head saw each answer token twice, and
    # nothing else; TRL's layout projects every position (here 3.2x as many).
    assert fast[3] == 2 * fast[4] < plain[3] / 3


# ---- GRPO: samples from the policy without dropout, scores only the answer positions ----


def grpo_first_step(compose, tmp_path, overrides, plain: bool):
    trainer = build_trainer(compose, tmp_path, [*GRPO_TINY, *overrides])
    if plain:  # TRL's own generation: in training mode
        trainer._generate_single_turn = lambda *a, **k: super(LabGRPOTrainer, trainer)._generate_single_turn(*a, **k)
    modes = []
    generate = trainer.model.generate

    def watch(*a, **k):
        modes.append(trainer.model.training)
        return generate(*a, **k)

    trainer.model.generate = watch
    with trl_layout() if plain else nullcontext():
        trainer.train()
    logs = trainer.state.log_history[0]
    return logs, modes


def test_fast_grpo_learns_what_plain_trl_learns(compose, tmp_path, tiny_model_dir):
    # Without dropout, eval and training mode compute the same function: same samples, same first step. The length
    # reward differs between answers, so the advantages and the gradient are not zero.
    settings = ["tuner.dropout=0", "algorithm.reward_funcs=[helpers.custom_rewards:Scaled]"]
    fast, fast_modes = grpo_first_step(compose, tmp_path / "fast", settings, plain=False)
    plain, plain_modes = grpo_first_step(compose, tmp_path / "plain", settings, plain=True)
    assert fast_modes and not any(fast_modes) and all(plain_modes)
    assert fast["num_tokens"] == plain["num_tokens"]
    # The first step's loss is the advantage-weighted ratio (1 at the start) and barely depends on the log-probs;
    # its gradient norm and the entropy do. fp32 in both; only the LM head's tile shapes differ.
    for key in ("loss", "grad_norm", "entropy"):
        assert fast[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-7), key
    assert fast["grad_norm"] > 0
