"""The trainer contract: every trainer an algorithm builds declares what the training flow asks of it."""

import pytest
import torch

from rlhf_lab.algorithms.contract import LabTrainer, check_contract, lab
from rlhf_lab.rewards.total import weighted_total


def test_a_library_trainer_gets_the_contracts_defaults_and_keeps_its_name():
    from trl import DPOTrainer

    wrapped = lab(DPOTrainer)
    assert wrapped.__name__ == "DPOTrainer" and wrapped.__mro__[1:3] == (LabTrainer, DPOTrainer)
    assert lab(DPOTrainer) is wrapped and lab(wrapped) is wrapped  # one class per library class
    plain = object.__new__(wrapped)  # the defaults need no trainer state
    assert plain.summary_extras() == {} and plain.lab_checkpoint_state() is None


def test_every_trainer_class_of_rlhf_lab_declares_the_contract():
    from rlhf_lab.algorithms.gkd.trainer import LabGKDTrainer
    from rlhf_lab.algorithms.grpo.trainer import LabGRPOTrainer
    from rlhf_lab.algorithms.ppo.trainer import LabPPOTrainer
    from rlhf_lab.vision.trainers import VisionCPOTrainer, VisionORPOTrainer, VisionRewardTrainer

    for cls in (LabGKDTrainer, LabGRPOTrainer, LabPPOTrainer, VisionCPOTrainer, VisionORPOTrainer, VisionRewardTrainer):
        assert issubclass(cls, LabTrainer), cls


def test_a_builder_that_returns_another_trainer_is_named():
    with pytest.raises(TypeError, match="rlhf_lab.algorithms.x:build returned a object, which is not a LabTrainer"):
        check_contract(object(), "rlhf_lab.algorithms.x:build")


def test_the_weighted_total_counts_a_missing_reward_as_zero():
    per_reward = torch.tensor([[1.0, 0.5], [float("nan"), 2.0], [float("nan"), float("nan")]])
    assert weighted_total(per_reward, torch.tensor([2.0, -1.0])).tolist() == [1.5, -2.0, 0.0]


def test_a_jobs_patch_of_trl_is_undone_when_the_job_ends():
    import trl.trainer.utils as trl_utils

    from rlhf_lab.patches import job_scope
    from rlhf_lab.patches.scored_positions import score_every_position, score_only_labelled_positions

    score_every_position()
    library = trl_utils._use_triton
    with job_scope():
        score_only_labelled_positions()
        assert trl_utils._use_triton is not library and trl_utils._use_triton.original is library
    assert trl_utils._use_triton is library
