"""GKD: the divergence against TRL's and the formula, sft_alpha's added term, the vocabulary check, tiny runs."""

import csv
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, build_trainer, read_summary, run_cli

from rlhf_lab.algorithms.gkd.build import check_shared_vocabulary
from rlhf_lab.algorithms.gkd.trainer import sft_loss
from rlhf_lab.errors import ModelError
from rlhf_lab.evaluation.distill import generalized_jsd

# A one-layer student distilled from the two-layer tiny teacher.
GKD_TINY = [
    *TINY,
    "algorithm=gkd",
    "algorithm.teacher_model=tiny",
    "model.num_hidden_layers=1",
    "dataset=arith_chat",
    "algorithm.max_completion_length=8",
]


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.5, 1.0])
def test_divergence_matches_trl_and_the_formula(beta):
    from trl.experimental.gkd import GKDTrainer

    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    ours = generalized_jsd(s, t, beta)
    theirs = GKDTrainer.generalized_jsd_loss(s, t, beta=beta, reduction="none").sum(-1)
    assert torch.allclose(ours, theirs, atol=1e-6)
    ps, pt = F.softmax(s, -1), F.softmax(t, -1)
    m = beta * pt + (1 - beta) * ps
    kl = lambda p, q: (p * (p.log() - q.log())).sum(-1)  # noqa: E731
    if 0 < beta < 1:  # Eq. 1; at the ends the mixture equals one side and the loss is defined as that KL
        assert torch.allclose(ours, beta * kl(pt, m) + (1 - beta) * kl(ps, m), atol=1e-5)
    if beta == 0.0:
        assert torch.allclose(ours, kl(pt, ps), atol=1e-5)
    if beta == 1.0:
        assert torch.allclose(ours, kl(ps, pt), atol=1e-5)


def test_sft_loss_is_the_answer_tokens_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[-100, -100, 3, 5]])
    # positions 1 and 2 predict tokens 3 and 5
    expected = -(F.log_softmax(logits[0, 1], -1)[3] + F.log_softmax(logits[0, 2], -1)[5]) / 2
    assert sft_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert sft_loss(logits, labels, num_items_in_batch=4).item() == pytest.approx(expected.item() / 2, rel=1e-6)


class _Tok:
    def __init__(self, vocab):
        self.vocab = vocab

    def get_vocab(self):
        return self.vocab

    def __len__(self):
        return len(self.vocab)


def _tok(vocab):
    return _Tok(vocab)


def _model(n):
    return SimpleNamespace(get_input_embeddings=lambda: SimpleNamespace(weight=torch.zeros(n, 1)))


def test_teacher_and_student_must_share_a_vocabulary():
    check_shared_vocabulary(_tok({"a": 0}), _tok({"a": 0}), _model(8), _model(8), "t")
    with pytest.raises(ModelError, match="different tokenizer vocabulary"):
        check_shared_vocabulary(_tok({"a": 0}), _tok({"b": 0}), _model(8), _model(8), "t")
    with pytest.raises(ModelError, match="8 token embeddings and the student 16"):
        check_shared_vocabulary(_tok({"a": 0}), _tok({"a": 0}), _model(16), _model(8), "t")


def test_sft_alpha_adds_its_term_on_dataset_batches_only(compose, tmp_path, tiny_model_dir):
    trainer = build_trainer(compose, tmp_path, [*GKD_TINY, "algorithm.sft_alpha=0.5", "algorithm.lmbda=0"])
    assert trainer.teacher_model.config.num_hidden_layers == 2 and trainer.model.config.num_hidden_layers == 1
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    with torch.no_grad():
        with_sft, outputs = trainer.compute_loss(model, batch, return_outputs=True)
        trainer.sft_alpha = 0.0
        plain = trainer.compute_loss(model, batch)
        trainer.sft_alpha, trainer._student_generated = 0.5, True
        on_policy = trainer.compute_loss(model, batch)
    nll = sft_loss(outputs.logits, batch["labels"])
    assert with_sft.item() == pytest.approx(plain.item() + 0.5 * nll.item(), rel=1e-5)
    assert on_policy.item() == pytest.approx(plain.item(), rel=1e-6)
    assert nll.item() > 1.0  # a random model: the SFT term is far from zero, so the check has teeth


@pytest.fixture(scope="module")
def lmbda_sweep(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("gkd")
    proc = run_cli(
        ["-m", *GKD_TINY, "algorithm.lmbda=0,1", "dataset.max_samples=8", f"hydra.sweep.dir={tmp}/sweep"], cwd=tmp
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "sweep"


def test_gkd_trains_and_lmbda_picks_who_writes_the_answers(lmbda_sweep):
    dataset_run, student_run = read_summary(lmbda_sweep / "0"), read_summary(lmbda_sweep / "1")
    for s in (dataset_run, student_run):
        assert s["status"] == "completed" and s["global_steps"] == 2 and math.isfinite(s["train_loss"])
        for phase in ("eval_before", "eval_after"):
            assert s[phase]["divergence"] >= 0 and s[phase]["forward_kl"] >= 0 and s[phase]["nll"] > 0
    assert dataset_run["batch_sources"] == {"dataset": 2, "teacher": 0, "student": 0}
    assert student_run["batch_sources"] == {"dataset": 0, "teacher": 0, "student": 2}
    with (lmbda_sweep / "sweep_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["algorithm.lmbda"] for r in rows] == ["0", "1"] and rows[0]["eval_after.divergence"]


def test_saved_student_reloads(lmbda_sweep, tiny_model_dir):
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(str(lmbda_sweep / "0" / "adapter"))
    assert config.peft_type == "LORA"


def _query_only(tmp_path):
    data = tmp_path / "q.jsonl"
    rows = [f'{{"messages": [{{"role": "user", "content": "What is {i} + 1?"}}]}}\n' for i in range(4)]
    data.write_text("".join(rows))
    return data


def test_query_only_rows_need_generated_answers(tmp_path, tiny_model_dir):
    data = _query_only(tmp_path)
    proc = run_cli([*GKD_TINY, f"dataset.path={data}", "dataset.val_path=null"], cwd=tmp_path)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "q.jsonl:1" in line and "algorithm.seq_kd=true" in line and "Traceback" not in proc.stderr


def test_seq_kd_trains_on_teacher_answers_to_query_only_rows(tmp_path, tiny_model_dir):
    data = _query_only(tmp_path)
    proc = run_cli(
        [
            *GKD_TINY,
            f"dataset.path={data}",
            "dataset.val_path=null",
            "algorithm.seq_kd=true",
            "algorithm.lmbda=0",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_summary(tmp_path / "run")["batch_sources"] == {"dataset": 0, "teacher": 2, "student": 0}
