"""Every theory chapter's inputs are valid at every profile: the selections the chapters make
from the profile's ``theory`` section (and the data they read) are made here with the very
functions the chapters call. The gpu profile's 20 reconstruction digits once asked for classes
10-19 and crashed chapter T7; its 2,000 T6 samples compared two overlapping draws of the 2,115
test 0s and 1s."""
import dataclasses

import numpy as np
import pytest
import torch

from kr_utils import config, data
from kr_utils.theory import autoencoders




@pytest.mark.parametrize("profile", sorted(config.PROFILES))
def test_every_theory_chapters_selection_is_valid_at_every_profile(profile, mnist_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(mnist_dir))
    cfg = config.get_config(profile)
    th = cfg.theory
    images, labels = data.load_mnist("test")
    # T7: its reconstruction and inpainting digits, the classes in turn
    picked = data.classes_in_turn(labels, th.recon_digits)
    assert len(set(picked)) == th.recon_digits
    assert [int(labels[i]) for i in picked] == [i % 10 for i in range(th.recon_digits)]
    # T7 opened alone: the fallback U-Net's training config is a valid one
    dataclasses.replace(cfg.diffusion, steps=th.recon_fallback_steps, milestones=(th.recon_fallback_steps,))
    # T6: samples compared with one draw of the test 0s and 1s, the floor with a second, disjoint draw
    test01 = data.to_model_range(images[(labels == 0) | (labels == 1)]).flatten(1)
    ref, second = autoencoders.disjoint_draws(test01, th.ae_samples, cfg.seed)
    assert len(ref) == len(second) == th.ae_samples
    assert not (ref[:, None, :] == second[None, :50, :]).all(-1).any()  # no digit in both draws
    assert autoencoders.short_schedule(th.ae_T).T == th.ae_T


def test_classes_in_turn_and_disjoint_draws_refuse_what_the_data_cannot_give():
    labels = np.array([0, 1, 2, 0, 1])
    assert data.classes_in_turn(labels, 5, num_classes=3) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="class 2"):
        data.classes_in_turn(labels, 6, num_classes=3)
    with pytest.raises(ValueError, match="theory.ae_samples=3"):
        autoencoders.disjoint_draws(torch.zeros(5, 2), 3, 0)
