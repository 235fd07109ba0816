"""Inverse-CDF token draws: the same distribution as transformers' multinomial sampling, after the same warpers."""

import math

import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from rlhf_lab.models import fast_sampling
from rlhf_lab.models.fast_sampling import InverseCdfDraw, sampling_warpers


def assert_frequencies(tokens: torch.Tensor, probs: torch.Tensor):
    """Every token's count within 5 standard deviations of its binomial expectation; impossible ones never drawn."""
    n = tokens.numel()
    counts = torch.bincount(tokens.flatten(), minlength=probs.numel()).double()
    for token, p in enumerate(probs.double().tolist()):
        if p == 0:
            assert counts[token] == 0, token
        else:
            assert abs(counts[token] - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1, (token, counts[token], n * p)


def test_a_draw_follows_the_softmax_of_the_scores():
    torch.manual_seed(0)
    scores = torch.tensor([2.0, 0.5, float("-inf"), -1.0, 1.0, float("-inf"), 0.0])
    rows = 40000  # of 7 entries each
    drawn = InverseCdfDraw()(None, scores.repeat(rows, 1))
    assert torch.isfinite(drawn).sum(-1).eq(1).all()  # one finite entry per row
    tokens = drawn.argmax(-1)
    assert_frequencies(tokens, torch.softmax(scores, -1))


def test_draws_differ_between_rows_and_calls():
    torch.manual_seed(0)
    scores = torch.zeros(64, 1000)
    first, second = (InverseCdfDraw()(None, scores).argmax(-1) for _ in range(2))
    assert len(set(first.tolist())) > 40 and not torch.equal(first, second)


def test_generate_samples_the_warped_distribution(tiny_model_dir):
    # The first sampled token of many copies of one prompt, against softmax(top_k(logits / temperature)).
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompt = torch.tensor([[1, 17, 42, 9]])
    config = GenerationConfig(do_sample=True, temperature=0.7, top_k=6, max_new_tokens=1, pad_token_id=0)
    with torch.no_grad():
        logits = model(input_ids=prompt).logits[0, -1].float() / 0.7
    keep = logits >= logits.topk(6).values[-1]
    probs = torch.softmax(logits.masked_fill(~keep, float("-inf")), -1)
    torch.manual_seed(0)
    with torch.no_grad():  # in batches: a whole-vocabulary row of scores per copy
        out = torch.cat(
            [
                fast_sampling.generate(model, input_ids=prompt.repeat(500, 1), generation_config=config)
                for _ in range(12)
            ]
        )
    assert out.shape == (6000, 5)
    assert_frequencies(out[:, -1], probs)


def test_greedy_and_unusual_samplers_are_left_to_transformers(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompt = torch.tensor([[1, 17, 42, 9]])
    greedy = GenerationConfig(do_sample=False, max_new_tokens=6, pad_token_id=0)
    with torch.no_grad():
        assert torch.equal(
            fast_sampling.generate(model, input_ids=prompt, generation_config=greedy),
            model.generate(input_ids=prompt, generation_config=greedy),
        )
    assert sampling_warpers(GenerationConfig(do_sample=True, typical_p=0.9)) is None
    assert sampling_warpers(GenerationConfig(do_sample=True, num_beams=2)) is None
    kinds = [
        type(w).__name__
        for w in sampling_warpers(GenerationConfig(do_sample=True, temperature=0.5, top_k=3, top_p=0.9, min_p=0.1))
    ]
    assert kinds == ["TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper"]
