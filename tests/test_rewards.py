"""The reward library: each built-in against hand-made answers, custom reward loading and its errors."""

import math

import pytest

from rlhf_lab.algorithms.grpo.config import GRPOConfig
from rlhf_lab.errors import ConfigError, RewardError
from rlhf_lab.rewards.builtin import Accuracy, Cosine, Format, Repetition, SoftOverlong, answer_text
from rlhf_lab.rewards.custom import needed_columns, resolve, resolve_all
from rlhf_lab.rewards.wrap import NamedReward


def cfg(**kw):
    return GRPOConfig(reward_funcs=kw.pop("reward_funcs", ["accuracy"]), **kw)


def test_accuracy_checks_answers_mathematically():
    completions = [
        "15 + 27 = 42.",  # the last number counts
        "I first thought 40, but it is 42",
        "<answer>42</answer> and then 7",  # inside <answer> wins over the rest
        r"So \boxed{\frac{3}{4}}",
        "0.75",
        "41",
        "no idea",
    ]
    solutions = ["42", "42", "42", "0.75", r"\frac{3}{4}", "42", "42"]
    assert Accuracy()(completions, solution=solutions) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_accuracy_skips_rows_whose_solution_does_not_parse():
    assert Accuracy()(["42"], solution=["forty-two"]) == [None]


def test_answer_text_takes_the_answer_block():
    assert answer_text("<think>2+2</think><answer> 4 </answer>") == " 4 "
    assert answer_text("just 4") == "just 4"


def test_format_wants_think_then_answer_and_nothing_else():
    f = Format()
    assert f(
        [
            "<think>add them</think><answer>5</answer>",
            "<think>a\nb</think>\n<answer>5</answer>\n",
            "<answer>5</answer>",
            "<think>x</think><answer>5</answer> trailing",
            "5",
        ]
    ) == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_cosine_follows_its_formula():
    c = Cosine(max_len=100, wrong=(-0.5, 0.0), correct=(1.0, 0.5))
    # right answers: 1.0 at length 0, 0.75 halfway, 0.5 at max_len and beyond
    assert c.value(0, True) == pytest.approx(1.0)
    assert c.value(50, True) == pytest.approx(0.75)
    assert c.value(100, True) == pytest.approx(0.5)
    assert c.value(400, True) == pytest.approx(0.5)
    # wrong answers: -0.5 at length 0 rising to 0 at max_len
    assert c.value(0, False) == pytest.approx(-0.5)
    assert c.value(25, False) == pytest.approx(-0.5 * (1 + math.cos(math.pi / 4)) / 2)
    out = c(["= 42", "= 41", "= 42"], solution=["42", "42", "x+"], completion_ids=[[1] * 50, [1] * 100, [1]])
    assert out[0] == pytest.approx(0.75) and out[1] == pytest.approx(0.0) and out[2] is None


def test_repetition_penalises_repeated_ngrams():
    r = Repetition(n_grams=3, max_penalty=-1.0)
    assert r.value("one two") == 0.0  # shorter than one n-gram
    assert r.value("a b c d e") == 0.0  # 3 distinct trigrams
    # "a b a b a b": trigrams aba, bab, aba, bab -> 2 distinct of 4 -> (1 - 2/4) * -1
    assert r.value("a b a b a b") == pytest.approx(-0.5)
    assert Repetition(2, -2.0)(["x x x x x"]) == [pytest.approx((1 - 1 / 4) * -2.0)]


def test_soft_overlong_is_zero_then_linear_to_minus_one():
    s = SoftOverlong(max_length=100, cache_length=20)
    assert s.value(80) == 0.0 and s.value(10) == 0.0
    assert s.value(90) == pytest.approx(-0.5)
    assert s.value(100) == pytest.approx(-1.0)
    assert s(["a", "b"], completion_ids=[[0] * 85, [0] * 60]) == [pytest.approx(-0.25), 0.0]


def test_builtin_rewards_take_their_settings_from_the_algorithm():
    c = cfg(
        reward_funcs=["cosine", "repetition", "soft_overlong"],
        max_completion_length=64,
        cosine_max_len_value_correct=0.2,
        repetition_n_grams=2,
        soft_cache_length=16,
    )
    (_, cosine), (_, rep), (_, soft) = resolve_all(c)
    assert cosine.max_len == 64 and cosine.correct == (1.0, 0.2)
    assert rep.n == 2
    assert soft.expected == 48 and soft.cache == 16


def test_custom_rewards_by_dotted_path_class_and_target():
    c = cfg()
    name, fn = resolve("helpers.custom_rewards.shout", 0, c)
    assert name == "shout" and fn(["hi!!", "x"]) == [2.0, 0.0]
    name, fn = resolve("helpers.custom_rewards:Scaled", 0, c)
    assert name == "Scaled" and fn(["abc"]) == [3.0]
    _, fn = resolve({"_target_": "helpers.custom_rewards.Scaled", "factor": 2.0}, 0, c)
    assert fn(["abc"]) == [6.0]
    _, fn = resolve({"_target_": "helpers.custom_rewards.scaled_length", "_partial_": True, "factor": 0.5}, 0, c)
    assert fn(completions=["abcd"]) == [2.0]


def test_custom_reward_columns_are_found_from_its_signature():
    _, fn = resolve("helpers.custom_rewards.solution_is_odd_then_length_parity", 0, cfg())
    assert needed_columns(fn) == ("solution",)
    assert needed_columns(Accuracy()) == ("solution",)
    assert needed_columns(Format()) == ()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("acuracy", "did you mean 'accuracy'"),
        ("helpers.custom_rewards.no_kwargs", "must accept **kwargs"),
        ("helpers.custom_rewards.no_completions", "must take a `completions` argument"),
        ("helpers.nowhere.fn", "cannot import 'helpers.nowhere'"),
        ("helpers.custom_rewards.missing", "has no 'missing'"),
        ({"_target_": "helpers.custom_rewards.Scaled", "bad": 1}, "cannot build"),
        (3, "expected a reward name"),
    ],
)
def test_bad_reward_specs_name_the_entry(spec, message):
    with pytest.raises(ConfigError) as e:
        resolve_all(cfg(reward_funcs=["format", spec]))
    assert e.value.key == "algorithm.reward_funcs[1]" and message in e.value.message


def test_a_reward_that_raises_names_itself_and_the_row():
    _, fn = resolve("helpers.custom_rewards.breaks_on_seven", 0, cfg())
    reward = NamedReward("breaks_on_seven", fn)
    rows = {"solution": ["9", "7", "8"], "row_source": ["d.jsonl:1", "d.jsonl:2", "d.jsonl:3"]}
    with pytest.raises(RewardError) as e:
        reward(prompts=[[]] * 3, completions=[[{"role": "assistant", "content": "x"}]] * 3, **rows)
    assert "'breaks_on_seven' raised ZeroDivisionError" in str(e.value) and "d.jsonl:2" in str(e.value)


@pytest.mark.parametrize(
    "fn, message", [("wrong_length", "returned 1 values for 2 answers"), ("returns_text", "returned 'high' on row a:1")]
)
def test_unusable_reward_output_is_an_error(fn, message):
    _, f = resolve(f"helpers.custom_rewards.{fn}", 0, cfg())
    with pytest.raises(RewardError) as e:
        NamedReward(fn, f)(prompts=[[], []], completions=["a", "b"], row_source=["a:1", "a:2"])
    assert message in str(e.value)


def test_wrapped_reward_gets_text_and_columns_but_not_trainer_internals():
    seen = {}

    def spy(completions, **kwargs):
        seen.update(kwargs, completions=completions)
        return [1, None]

    out = NamedReward("spy", spy)(
        prompts=[[{"role": "user", "content": "q"}]] * 2,
        completions=[[{"role": "assistant", "content": "a1"}], [{"role": "assistant", "content": "a2"}]],
        completion_ids=[[1], [2]],
        solution=["1", "2"],
        row_source=["f:1", "f:2"],
        log_extra=print,
        log_metric=print,
    )
    assert out == [1.0, None]
    assert seen["completions"] == ["a1", "a2"] and seen["solution"] == ["1", "2"]
    assert "row_source" not in seen and "log_extra" not in seen
