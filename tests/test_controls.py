"""The live controls' callbacks (kr_utils.controls), called directly: the figure each control
redraws, and the widget wiring."""
import pytest
import torch

import dataclasses

from kr_utils import config, controls, diffusion, models

SCHEDULE = diffusion.NoiseSchedule.linear(1000, 1e-4, 0.02)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return models.ConditionalUNet(base=8, mults=(1, 2), attention=False).eval()


def test_trajectory_frame_draws_the_requested_step():
    traj = {10: torch.zeros(4, 2), 0: torch.ones(4, 2)}
    fig = controls.trajectory_frame(traj, 0, labels=torch.tensor([0, 1, 0, 1]), reference=torch.randn(5, 2))
    ax = fig.axes[0]
    assert ax.get_title() == "t = 0"
    assert (ax.collections[-1].get_offsets() == 1).all()   # the points of step 0, over the reference
    with pytest.raises(KeyError, match="saved steps"):
        controls.trajectory_frame(traj, 5, labels=torch.zeros(4))


def test_trajectory_controls_slider_redraws():
    traj = {10: torch.zeros(3, 2), 0: torch.ones(3, 2)}
    w = controls.trajectory_controls(traj, torch.tensor([0, 1, 0]))
    slider = w.children[0]
    assert list(slider.options) == [10, 0] and slider.value == 10
    slider.value = 0  # the callback runs without error on a change


def test_sampling_frame_follows_its_controls(unet):
    K = controls.SamplingKnobs
    fig = controls.sampling_frame(unet, SCHEDULE, K(digit=7, w=2.0, sampler="ancestral", steps=3, clip=False, seed=5), n=4)
    assert "digit 7, w = 2, ancestral 3 steps, clip off, seed 5" in fig._suptitle.get_text()
    assert len([a for a in fig.axes if a.images]) == 4
    a = controls.sampling_frame(unet, SCHEDULE, K(digit=1, steps=2, seed=3), n=2).axes[0].images[0].get_array()
    b = controls.sampling_frame(unet, SCHEDULE, K(digit=1, steps=2, seed=3), n=2).axes[0].images[0].get_array()
    c = controls.sampling_frame(unet, SCHEDULE, K(digit=1, steps=2, seed=4), n=2).axes[0].images[0].get_array()
    assert (a == b).all() and not (a == c).all()  # the seed decides the noise
    with pytest.raises(ValueError, match="digit"):
        controls.sampling_frame(unet, SCHEDULE, K(digit=10))
    with pytest.raises(ValueError, match="sampler"):
        controls.sampling_frame(unet, SCHEDULE, K(sampler="euler"))


def test_sampling_controls_carry_the_defaults(unet):
    w = controls.sampling_controls(unet, SCHEDULE, controls.SamplingKnobs(digit=4, w=1.5, steps=7, clip=False))
    values = {c.description: c.value for c in w.children if hasattr(c, "value") and c.description}
    assert values["digit"] == 4 and values["guidance w"] == 1.5 and values["steps"] == 7
    assert values["clip x0_hat"] is False and values["sampler"] == "ddim"


def test_threshold_frame_splits_kept_and_rejected():
    images = torch.linspace(-1, 1, 6).reshape(6, 1, 1, 1).expand(6, 1, 28, 28)
    conf = torch.tensor([0.95, 0.2, 0.91, 0.5, 0.99, 0.89])
    fig = controls.threshold_frame(images, conf, 0.9, n=3)
    assert fig.shown == [0, 2, 4, 1, 3, 5]           # kept first (>= 0.9), then rejected
    assert fig.axes[0].get_ylabel() == "kept (3)" and fig.axes[3].get_ylabel() == "rejected (3)"
    assert controls.threshold_frame(images, conf, 0.5, n=3).shown == [0, 2, 3, 1]  # n=3 of 5 kept, 1 rejected
    with pytest.raises(ValueError, match="threshold"):
        controls.threshold_frame(images, conf, 1.5)


def test_threshold_controls_slider_redraws():
    images, conf = torch.zeros(4, 1, 28, 28), torch.tensor([0.1, 0.5, 0.9, 0.95])
    w = controls.threshold_controls(images, conf, 0.9, n=2)
    slider = w.children[0]
    assert slider.value == 0.9
    slider.value = 0.4


def test_confidence_demo_labels_every_digit(unet):
    teacher = models.build_classifier("simple_cnn").eval()
    gcfg = dataclasses.replace(config.get_config("smoke").sampler, num_steps=2, guidance_w=1.0)
    x, conf = controls.confidence_demo(unet, teacher, SCHEDULE, gcfg, seed=0, per_class=1)
    assert x.shape == (10, 1, 28, 28) and conf.shape == (10,) and ((conf > 0) & (conf <= 1)).all()
