"""Every CUDA code path against its CPU reference (marker ``cuda``; skipped without a GPU).

The rest of the suite runs these paths on the CPU only: seeds stacked by ``vmap``, the fused
optimisers, fp16 with the gradient scaler (what a Colab T4 gets) and bf16, batches and
augmentation drawn on the device, the samplers, checkpoints, ``torch.compile`` and CUDA graphs.
``benchmarks/gpu_check.py`` (``make gpu-check``) runs this file first on a GPU box:

    python -m pytest -m cuda tests/test_cuda.py

Each test is small (a few hundred synthetic digits, a U-Net of a few thousand parameters), so
the file takes about a minute with compilation included.
"""
import copy
import dataclasses

import pytest
import torch

from kr_utils import checkpoints, config, data, diffusion, distill, fit, models, runtime
from bars import bar_digits

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]
GPU = torch.device("cuda")


@pytest.fixture(autouse=True)
def float32(monkeypatch):
    # the comparisons are made in float32; the precision tests set their own
    monkeypatch.setenv(runtime.PRECISION_ENV, "fp32")


def _recipe(**changes):
    base = dict(arch="compressed_cnn", epochs=2, batch_size=40, lr=2e-3, patience=5, augment=False)
    return config.ClassifierRecipe(**{**base, **changes})


def _train(device, recipe, seed=0):
    x, y, z = bar_digits(240)
    return distill.train_student((x[:200], y[:200], z[:200]), (x[200:], y[200:]), recipe, seed=seed, device=device)


def _agree(m1, m2, min_agreement=0.97):
    x = bar_digits(200, seed=9)[0]
    p1 = models.predict_logits(m1.cpu(), x).softmax(1)
    p2 = models.predict_logits(m2.cpu(), x).softmax(1)
    agreement = (p1.argmax(1) == p2.argmax(1)).float().mean().item()
    assert agreement >= min_agreement, f"the two runs agree on {agreement:.1%} of the digits"
    return (p1 - p2).abs().max().item()


def test_one_training_run_on_cuda_is_the_cpu_run():
    with runtime.use_levers(fused_optimizer=False, device_batches=False):
        m_cpu, h_cpu = _train("cpu", _recipe())
        m_gpu, h_gpu = _train(GPU, _recipe())
    torch.testing.assert_close(torch.tensor(h_gpu["train_loss"]), torch.tensor(h_cpu["train_loss"]), rtol=2e-2, atol=1e-3)
    assert _agree(m_cpu, m_gpu) < 0.05


@pytest.mark.parametrize("soft", [False, True])
def test_stacked_seeds_on_cuda_are_each_seeds_own_run(soft):
    x, y, z = bar_digits(240)
    train, val = (x[:200], y[:200], z[:200]), (x[200:], y[200:])
    recipe = _recipe(arch="resnet_preact", soft=soft, augment=True)
    seeds = [0, 1, 2]
    alone = [distill.train_student(train, val, recipe, seed=s, device=GPU) for s in seeds]
    together = distill.train_students([train] * 3, [val] * 3, recipe, seeds=seeds, device=GPU)
    for (m1, h1), (m2, h2) in zip(alone, together):
        assert h1["best_epoch"] == h2["best_epoch"]
        torch.testing.assert_close(torch.tensor(h2["val_loss"]), torch.tensor(h1["val_loss"]), rtol=2e-2, atol=1e-3)
        assert _agree(m1, m2) < 0.05


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_the_fused_optimizer_takes_the_cpu_loops_steps(kind):
    torch.manual_seed(0)
    ref = models.build_classifier("compressed_cnn")
    net = copy.deepcopy(ref).to(GPU)
    opt_cpu = fit.optimizer(kind, ref.parameters(), 1e-3, "cpu", weight_decay=0.01 if kind == "adamw" else 0.0)
    opt_gpu = fit.optimizer(kind, net.parameters(), 1e-3, GPU, weight_decay=0.01 if kind == "adamw" else 0.0)
    assert opt_gpu.defaults.get("fused") is True, "the fused_optimizer lever is on by default on a GPU"
    x, y, _ = bar_digits(64)
    for _ in range(5):
        for model, opt, dev in ((ref, opt_cpu, "cpu"), (net, opt_gpu, GPU)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x.to(dev)), y.to(dev)).backward()
            opt.step()
    for (name, p), q in zip(ref.named_parameters(), net.parameters()):
        torch.testing.assert_close(q.cpu(), p, rtol=1e-3, atol=1e-5, msg=f"{kind}: {name}")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_training_on_cuda_learns_as_fp32_does(monkeypatch, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    m32, h32 = _train(GPU, _recipe(arch="simple_cnn", epochs=3))
    monkeypatch.setenv(runtime.PRECISION_ENV, precision)
    assert runtime.precision(GPU) == precision
    # fp16 (a T4's arithmetic) trains under the gradient scaler; bf16 needs none
    assert runtime.grad_scaler(GPU).is_enabled() == (precision == "fp16")
    m16, h16 = _train(GPU, _recipe(arch="simple_cnn", epochs=3))
    assert all(torch.isfinite(torch.tensor(h16["train_loss"])))
    assert h16["val_acc"][-1] >= h32["val_acc"][-1] - 0.05, (h16["val_acc"], h32["val_acc"])
    x, y, _ = bar_digits(200, seed=9)
    acc32, acc16 = ((models.predict_logits(m.cpu(), x).argmax(1) == y).float().mean().item() for m in (m32, m16))
    assert acc16 > 0.8 and acc16 >= acc32 - 0.03, f"{precision}: {acc16:.1%} on held-out bar digits, fp32 {acc32:.1%}"


def test_device_batches_are_the_cpu_batches_and_augmentation_stays_on_the_device():
    on_cpu = data.Batcher(100, 32, torch.Generator().manual_seed(3))
    on_gpu = data.Batcher(100, 32, torch.Generator().manual_seed(3), device=GPU)
    for _ in range(7):  # over two epochs
        a, b = next(on_cpu), next(on_gpu)
        assert b.device.type == "cuda" and torch.equal(a, b.cpu())
    assert on_gpu.draws.device.type == "cuda"
    x = bar_digits(32)[0].to(GPU)
    theta = distill.affine_params(32, on_gpu.draws, GPU)
    assert theta.device.type == "cuda"
    torch.testing.assert_close(distill.apply_affine(x, theta).cpu(), distill.apply_affine(x.cpu(), theta.cpu()),
                               rtol=1e-4, atol=1e-4)
    again = data.Batcher(100, 32, torch.Generator().manual_seed(3), device=GPU)
    torch.testing.assert_close(distill.affine_params(32, again.draws, GPU), theta)  # seeded on the device too


@pytest.mark.parametrize("name", sorted(diffusion.SAMPLERS))
def test_every_sampler_on_cuda_draws_the_cpubar_digits(name):
    torch.manual_seed(0)
    unet = models.ConditionalUNet(base=8, mults=(1, 2), attention=True).eval()
    schedule = diffusion.NoiseSchedule.linear(100, 1e-4, 0.02)
    # unclipped, so that a random network's digits are not all saturated at -1 and 1 (where a
    # wrong per-step noise would not show); eta = 1 makes DDIM draw noise too
    sampler = diffusion.build_sampler(config.get_config("smoke").sampler, schedule, sampler=name, num_steps=10,
                                      clip_x0=False, eta=1.0)
    labels = torch.arange(10)
    out = {}
    last = sampler.timesteps[-1].item()  # the state after the last step, before generate's clamp
    for dev in ("cpu", GPU):  # one CPU generator drives both: the same starting and per-step noise
        out[str(dev)] = diffusion.generate(copy.deepcopy(unet).to(dev), sampler, labels, 1.5,
                                           torch.Generator().manual_seed(1), return_trajectory=(last,))[1][last]
    assert out["cpu"].std() > 0.1
    torch.testing.assert_close(out["cuda"], out["cpu"], rtol=1e-3, atol=2e-3)


def test_a_checkpoint_saved_on_cuda_loads_on_a_cpu(tmp_path):
    torch.manual_seed(0)
    net = models.build_classifier("resnet_preact").to(GPU).eval()
    path = tmp_path / "teacher.pt"
    checkpoints.save_checkpoint(path, net, kind="teacher", config={"arch": "resnet_preact"}, profile="smoke", seed=0)
    ckpt = checkpoints.load_checkpoint(path, kind="teacher", profile="smoke")
    assert all(t.device.type == "cpu" for t in ckpt["state_dict"].values())
    back = models.build_classifier("resnet_preact", ckpt["state_dict"]).eval()
    x = bar_digits(16)[0]
    torch.testing.assert_close(back(x), net(x.to(GPU)).cpu(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("levers", [dict(compile=True, cuda_graphs=False), dict(compile=True, cuda_graphs=True)],
                         ids=["compile", "cuda_graphs"])
def test_compiled_training_is_the_eager_run(levers):
    with runtime.use_levers(compile=False, cuda_graphs=False):
        m_eager, h_eager = _train(GPU, _recipe())
    with runtime.use_levers(**levers):
        m_comp, h_comp = _train(GPU, _recipe())
    torch.testing.assert_close(torch.tensor(h_comp["train_loss"]), torch.tensor(h_eager["train_loss"]), rtol=2e-2, atol=1e-3)
    assert _agree(m_eager, m_comp) < 0.05


def test_a_few_unet_steps_on_cuda_with_every_lever_on():
    cfg = config.get_config("smoke").diffusion
    x, y, _ = bar_digits(256)
    with runtime.use_levers(compile=True, cuda_graphs=True):
        run = diffusion.train_diffusion(models.ConditionalUNet(base=8, mults=(1, 2), attention=True), x, y,
                                        dataclasses.replace(cfg, steps=8, batch_size=32, milestones=(8,)),
                                        seed=0, device=GPU,
                                        options=diffusion.DiffusionOptions(save_every_s=None, progress=False))
    assert len(run.losses) == 8 and all(torch.isfinite(torch.tensor(run.losses)))
