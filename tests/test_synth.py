import numpy as np
import pytest
import torch

import dataclasses

from kr_utils import config, data, store, synth


class FakeGenerator(torch.nn.Module):
    """Stands in for the U-Net: the 'digit' it makes for class c is a bar at row 2c,
    drawn by FakeSampler in one step, on a black (-1) background."""
    null_class = 10

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t, y):
        return torch.zeros_like(x)


class FakeSampler:
    timesteps = torch.tensor([0])

    def step(self, eps, t, x, generator=None):
        return x


def fake_generate(model, sampler, labels, w, generator, x_T_scale=1.0, **_):
    x = -torch.ones(len(labels), 1, 28, 28)
    for i, c in enumerate(labels.tolist()):
        if c < 10:
            x[i, 0, 2 * c + 4, 4:24] = 1
    return x


class FakeTeacher(torch.nn.Module):
    """Reads the bar's row; its confidence is high except for the classes in `unsure`,
    and it calls class `swap[0]` class `swap[1]`."""

    def __init__(self, unsure=(), swap=None):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.unsure, self.swap = set(unsure), swap

    def forward(self, x):
        rows = (x[:, 0] > 0).float().sum(2)  # (B, 28)
        cls = ((rows.argmax(1) - 4) // 2).clamp(0, 9)
        if self.swap:
            cls = torch.where(cls == self.swap[0], torch.full_like(cls, self.swap[1]), cls)
        logits = torch.zeros(len(x), 10)
        conf = torch.tensor([1.0 if c.item() in self.unsure else 8.0 for c in cls])
        logits[torch.arange(len(x)), cls] = conf
        return logits


@pytest.fixture(autouse=True)
def _fake_generation(monkeypatch):
    monkeypatch.setattr(synth, "generate", fake_generate)


def build(teacher, generator=None, **kw):
    """build_synthetic_set with a SynthConfig and a SamplerConfig made from keyword values."""
    args = dict(per_class=5, threshold=0.9, threshold_floor=0.5, label_mode="teacher", mode="balanced",
                oversample=1.2, max_rounds=50, guidance_w=1.0, batch_size=16, progress=False)
    args.update(kw)
    smoke = config.get_config("smoke")
    pick = lambda stage: {k: args.pop(k) for k in [f.name for f in dataclasses.fields(stage)] if k in args}  # noqa: E731
    synth_cfg = config.SynthConfig(**pick(config.SynthConfig))
    sampling = dataclasses.replace(smoke.sampler, **pick(config.SamplerConfig))
    return synth.build_synthetic_set(synth.DigitSource(generator or FakeGenerator(), FakeSampler(), teacher), synth_cfg, sampling, **args)


def test_quotas_follow_the_generators_classes():
    """A generator of 3 classes (its null token is 3) fills 3 quotas, not 10."""
    gen = FakeGenerator()
    gen.null_class = 3
    r = build(FakeTeacher(), generator=gen)
    assert np.bincount(r["labels"]).tolist() == [5, 5, 5] and set(r["generated_requested"].tolist()) == {0, 1, 2}


def test_balanced_quotas_with_teacher_labels():
    r = build(FakeTeacher())
    assert np.bincount(r["labels"], minlength=10).tolist() == [5] * 10
    assert r["agreement"] == 1.0 and r["final_threshold"] == 0.9
    assert r["images"].dtype == np.uint8 and r["images"].shape == (50, 28, 28)


def test_teacher_label_vs_requested_label():
    # the teacher calls every requested 3 a 5: with teacher labels, 3 can never be filled
    with pytest.raises(synth.SyntheticSetError, match=r"per-class counts \[5, 5, 5, 0, 5, 5, 5, 5, 5, 5\]"):
        build(FakeTeacher(swap=(3, 5)), max_rounds=5)
    r = build(FakeTeacher(swap=(3, 5)), label_mode="requested")
    assert np.bincount(r["labels"], minlength=10).tolist() == [5] * 10
    assert r["agreement"] == pytest.approx(0.9)  # 5 of 50 kept digits disagree


def test_threshold_is_lowered_then_stops_at_the_floor():
    # class 7 only ever gets confidence softmax(1 vs 0 x9) = 0.23
    with pytest.raises(synth.SyntheticSetError, match=r"floor 0.5; per-class counts \[5, 5, 5, 5, 5, 5, 5, 0, 5, 5\]"):
        build(FakeTeacher(unsure={7}))
    r = build(FakeTeacher(unsure={7}), threshold_floor=0.2, max_rounds=200)
    assert 0.2 <= r["final_threshold"] < 0.24
    assert np.bincount(r["labels"], minlength=10)[7] == 5
    assert r["thresholds"][0] == 0.9 and r["thresholds"] == sorted(r["thresholds"], reverse=True)


def test_budget_returns_a_partial_set_instead_of_failing():
    # class 7 never passes 0.9: without a budget the build would lower the threshold; with one
    # it stops after the budget and says the set is incomplete
    r = build(FakeTeacher(unsure={7}), oversample=1.0, budget=50)
    assert r["generated"] == 50 and not r["complete"] and r["final_threshold"] == 0.9
    assert np.bincount(r["labels"], minlength=10).tolist() == [5] * 7 + [0] + [5] * 2
    assert build(FakeTeacher(), oversample=1.0, budget=50)["complete"]
    with pytest.raises(synth.SyntheticSetError, match="within the budget"):
        build(FakeTeacher(unsure=set(range(10))), budget=20)
    with pytest.raises(ValueError, match="budget must be a positive"):
        build(FakeTeacher(), budget=0)


def test_unconditional_mode_keeps_total():
    r = build(FakeTeacher(), mode="unconditional", per_class=3)
    assert len(r["labels"]) == 30 and r["agreement"] is None


def test_saved_set_reads_back_with_same_background_as_real(tmp_path, mnist_dir, monkeypatch):
    r = build(FakeTeacher())
    summary = synth.save_synthetic_set(tmp_path / "s", r)
    back = synth.load_synthetic_set(tmp_path / "s")
    np.testing.assert_array_equal(back["images"], r["images"])
    assert summary["size"] == 50 and summary["class_counts"] == [5] * 10
    # one pixel convention: stored synthetic background == real MNIST background (0, black)
    monkeypatch.setenv(data.DATA_ENV, str(mnist_dir))
    real, _ = data.load_mnist("test")
    assert back["images"][0, 0, 0] == real[0, 0, 0] == 0
    assert (tmp_path / "s" / "confidence_per_class.csv").read_text().startswith("class,generated,conf_mean")
    probs = np.load(tmp_path / "s" / "teacher_probs.npy")
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_cache_key_and_reuse(tmp_path):
    (tmp_path / "teacher.pt").write_bytes(b"teacher weights")
    (tmp_path / "diffusion.pt").write_bytes(b"diffusion weights")
    key = store.fingerprint({"per_class": 5}, tmp_path / "teacher.pt", tmp_path / "diffusion.pt")
    assert synth.cached_summary(tmp_path / "s", key) is None  # nothing built yet
    synth.save_synthetic_set(tmp_path / "s", build(FakeTeacher()), key=key, extra={"generation_time_s": 1.5})
    hit = synth.cached_summary(tmp_path / "s", key)
    assert hit["size"] == 50 and hit["generation_time_s"] == 1.5
    assert store.fingerprint({"per_class": 6}, tmp_path / "teacher.pt", tmp_path / "diffusion.pt") != key
    (tmp_path / "teacher.pt").write_bytes(b"retrained teacher")
    new_key = store.fingerprint({"per_class": 5}, tmp_path / "teacher.pt", tmp_path / "diffusion.pt")
    assert new_key != key and synth.cached_summary(tmp_path / "s", new_key) is None
    (tmp_path / "s" / synth.LABELS_FILE).write_bytes(b"corrupted")  # a damaged set is rebuilt
    assert synth.cached_summary(tmp_path / "s", key) is None


def test_thesis_code_set_fills_each_class_by_request_on_black(monkeypatch):
    # a fake generator: grey-ish digits (values 100 and 200), the teacher confident on every other
    # one and always saying "3": the set keeps per_class of each *requested* class, each pixel
    # below the middle forced to black before the teacher sees it, over as many rounds as needed
    seen = []

    def fake_draw(source, requested, sampling, *, seed, device, progress=True, postprocess=None):
        imgs = np.full((len(requested), 28, 28), 100, np.uint8)
        imgs[:, 10:14, 10:14] = 200
        imgs = postprocess(imgs)
        seen.append(imgs)
        logits = np.zeros((len(requested), 10), np.float32)
        logits[::2, 3] = 20.0  # confident on every other digit
        return {"images": imgs, "requested": np.asarray(requested), "logits": logits}

    monkeypatch.setattr(synth, "draw_labelled", fake_draw)
    sampling = config.get_config("smoke").sampler
    r = synth.thesis_code_set(synth.DigitSource(FakeGenerator(), None, None), sampling, per_class=7, threshold=0.85, seed=0, device="cpu")
    assert np.bincount(r["labels"], minlength=10).tolist() == [7] * 10  # requested classes, not the teacher's 3
    assert (r["labels"] == r["requested"]).all()
    assert set(np.unique(r["images"])) == {0, 200}  # 100 < 128 became black
    assert r["generated"] % synth.THESIS_BATCH == 0 and r["acceptance_rate"] == 70 / r["generated"]
    with pytest.raises(synth.SyntheticSetError, match="classes"):
        synth.thesis_code_set(synth.DigitSource(FakeGenerator(), None, None), sampling, per_class=150, threshold=0.85, seed=0, device="cpu",
                              max_rounds=1)  # half of 1.25 x 150 per class pass in one round: short


def test_thesis_code_set_lowers_its_threshold_per_batch_that_keeps_nothing(monkeypatch):
    """As generate_balanced_dataset: class 5 never reaches 0.85 (the teacher gives it about
    0.70); once the other classes are full, each batch of 200 that keeps nothing lowers the
    threshold by 0.01, until class 5's digits pass."""
    def fake_draw(source, requested, sampling, *, seed, device, progress=True, postprocess=None):
        requested = np.asarray(requested)
        logits = np.zeros((len(requested), 10), np.float32)
        logits[np.arange(len(requested)), requested] = np.where(requested == 5, np.log(0.70 * 9 / 0.30), 20.0)
        return {"images": np.zeros((len(requested), 28, 28), np.uint8), "requested": requested, "logits": logits}

    monkeypatch.setattr(synth, "draw_labelled", fake_draw)
    sampling = config.get_config("smoke").sampler
    r = synth.thesis_code_set(synth.DigitSource(FakeGenerator(), None, None), sampling, per_class=200, threshold=0.85, seed=0, device="cpu",
                              max_rounds=40)
    assert np.bincount(r["labels"], minlength=10).tolist() == [200] * 10
    assert 0.67 <= r["final_threshold"] <= 0.70  # lowered 0.01 a fruitless batch, from 0.85 to class 5's level
    # the first round (2,600 digits), then rounds of two batches of class 5, each lowering the threshold:
    # about 8 rounds, where lowering once a round would take 16
    assert r["generated"] <= 2600 + 9 * 2 * synth.THESIS_BATCH, r["generated"]
    # a class the teacher never trusts past 0.40: the threshold stops at its code's floor (0.5), named
    monkeypatch.setattr(synth, "draw_labelled", lambda *a, **k: _unsure5(fake_draw(*a, **k)))
    with pytest.raises(synth.SyntheticSetError, match=r"\[5\] have .* at confidence >= 0.5$"):
        synth.thesis_code_set(synth.DigitSource(FakeGenerator(), None, None), sampling, per_class=20, threshold=0.85, seed=0, device="cpu",
                              max_rounds=60)


def _unsure5(pool):
    """Class 5 at teacher confidence 0.40, below the thesis' floor."""
    req = np.asarray(pool["requested"])
    pool["logits"][req == 5, 5] = np.log(0.40 * 9 / 0.60)
    return pool


def test_threshold_report_measures_acceptance_at_the_configured_threshold():
    """A set whose last rounds lowered the threshold: its summary's rate is at the lowered one;
    the report's is the per-class table's, at the configured one, and counts the kept digits below it."""
    import numpy as np

    from kr_utils import synth

    confident, unsure = np.full(10, -9.0), np.full(10, -9.0)
    confident[3], unsure[3] = 9.0, 0.0  # softmax max ~1.0, and ~0.0001 * e^9 / (1 + ...) < 0.9
    unsure[4] = -0.5
    stored = {"logits": np.stack([confident, confident, unsure]).astype(np.float32),
              "summary": {"threshold": 0.9, "final_threshold": 0.85, "acceptance_rate": 0.7}}
    table = {"generated": [10, 30], "frac_above_threshold": [0.5, 0.1]}
    got = synth.threshold_report(stored, table)
    assert got["accepted_at_threshold"] == pytest.approx((5 + 3) / 40)
    assert got["kept_below_threshold"] == 1 and got["final_threshold"] == 0.85 and got["threshold"] == 0.9


def test_the_background_level_is_the_corners_mean_and_ignores_the_centre():
    imgs = np.zeros((2, 28, 28), dtype=np.uint8)
    imgs[:, 5:23, 5:23] = 255  # the digit: no weight
    imgs[0, :3, :3] = 90  # one corner of one image
    assert synth.background_level(imgs) == pytest.approx(90 * 9 / (2 * 18))
    assert synth.background_level(imgs[:, None]) == pytest.approx(synth.background_level(imgs))  # (N, 1, H, W)
    assert synth.background_level(np.full((3, 28, 28), 127, np.uint8)) == pytest.approx(127)
