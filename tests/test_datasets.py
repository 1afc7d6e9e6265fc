"""The dataset is a parameter (issue 17): shape and classes come from the data, an unknown name
or a folder holding the wrong dataset is a clear error before any training, the two datasets'
artifacts never mix, and a synthetic set is written as torchvision reads the dataset."""
import numpy as np
import pytest
import torch

import kr_utils
from kr_utils import checkpoints, config, data, evaluate, models, store, synth


@pytest.fixture
def shared_data(mnist_dir, monkeypatch):
    """$KR_DATA_DIR at the MNIST folder, Fashion-MNIST found beside it (../shared/data)."""
    if not (mnist_dir.parent / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("no local Fashion-MNIST copy beside MNIST")
    monkeypatch.setenv(data.DATA_ENV, str(mnist_dir))
    monkeypatch.delenv(data.FASHION_ENV, raising=False)
    return mnist_dir.parent


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shape_and_classes_come_from_the_data(shared_data, name):
    import torchvision.datasets

    info = kr_utils.get_config("smoke", dataset=name).data
    images, labels = data.load(name, "test")
    assert info.image_shape == (1, *images.shape[1:])
    assert info.num_classes == len(np.unique(labels))
    tv = getattr(torchvision.datasets, data.DATASETS[name].torchvision).classes
    assert [t.startswith(c) for c, t in zip(info.class_names, tv)] == [True] * len(tv)


def test_fashion_is_not_mnist(shared_data):
    m, f = data.load("mnist", "test"), data.load("fashion-mnist", "test")
    assert m[1][:5].tolist() == [7, 2, 1, 0, 4] and f[1][:5].tolist() == [9, 2, 1, 1, 6]  # the published first labels
    assert data.info("fashion-mnist").class_names[0] == "T-shirt/top" and data.info("mnist").class_names[0] == "0"


def test_unknown_dataset_is_refused_by_name():
    with pytest.raises(config.ConfigError, match=r"unknown dataset 'cifar'.*fashion-mnist.*mnist"):
        kr_utils.get_config("smoke", dataset="cifar")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        data.load("cifar", "test")


def test_dataset_from_the_environment(shared_data, monkeypatch):
    monkeypatch.setenv(config.DATASET_ENV, "fashion-mnist")
    assert kr_utils.get_config("smoke").dataset == "fashion-mnist"
    monkeypatch.setenv(config.DATASET_ENV, "svhn")
    with pytest.raises(config.ConfigError, match="unknown dataset 'svhn'"):
        kr_utils.get_config("smoke")


def test_a_folder_of_the_other_dataset_is_named(shared_data, monkeypatch):
    monkeypatch.setenv(data.FASHION_ENV, str(shared_data / "mnist"))
    with pytest.raises(data.IdxFormatError, match=r"mnist: the test images' mean pixel is 0\.1\d\d.*looks like mnist.*KR_FASHION_DIR"):
        data.load("fashion-mnist", "test")
    monkeypatch.delenv(data.FASHION_ENV)
    monkeypatch.setenv(data.DATA_ENV, str(shared_data / "fashion-mnist"))
    with pytest.raises(data.IdxFormatError, match=r"fashion-mnist: the train images' mean pixel is 0\.2\d\d.*looks like fashion-mnist"):
        data.load("mnist", "train")


def test_a_missing_dataset_folder_is_an_error_not_a_download(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "mnist"))
    monkeypatch.delenv(data.FASHION_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r"no folder 'fashion-mnist' in or beside \$KR_DATA_DIR.*KR_FASHION_DIR"):
        data.load("fashion-mnist", "test")


def test_each_dataset_has_its_own_artifacts_and_checkpoints(shared_data):
    m, f = kr_utils.get_config("smoke"), kr_utils.get_config("smoke", dataset="fashion-mnist")
    assert m.run == "smoke" and f.run == "smoke-fashion-mnist"
    assert store.artifact_dir(m.run) != store.artifact_dir(f.run)
    path = store.artifact_dir(f.run) / "teacher.pt"
    checkpoints.save_checkpoint(path, models.build_classifier("simple_cnn"), kind="teacher", config={}, profile=f.run,
                                seed=0, extra={"arch": "simple_cnn"})
    with pytest.raises(store.UnreadableFileError, match="smoke-fashion-mnist"):  # a Fashion teacher in the MNIST run
        checkpoints.load_checkpoint(path, "teacher", m.run)


def test_dataset_changes_apply_to_that_dataset_only():
    assert kr_utils.get_config("cpu").sampler.sampler == config.PROFILES["cpu"]["sampler"]["sampler"]
    f = kr_utils.get_config("cpu", dataset="fashion-mnist")
    assert f.sampler.sampler == config.DATASET_CHANGES["fashion-mnist"]["cpu"]["sampler"]["sampler"]
    m = kr_utils.get_config("cpu")
    assert f.diffusion == m.diffusion
    for section in ("teacher", "student", "synth"):  # the changed keys take their values; every other key is MNIST's
        changed = config.DATASET_CHANGES["fashion-mnist"]["cpu"].get(section, {})
        got, base = getattr(f, section), getattr(m, section)
        assert {k: getattr(got, k) for k in changed} == changed
        assert all(getattr(got, k) == getattr(base, k) for k in base.as_dict() if k not in changed)


@pytest.mark.parametrize("arch", sorted(models.CLASSIFIERS))
def test_classifier_classes_from_data_and_from_weights(arch):
    x, y = torch.zeros(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 6])
    shape = models.classes_of((x, y))
    assert shape == {"num_classes": 7, "in_channels": 1, "image_size": 28}
    assert models.classes_of((x, y, torch.zeros(6, 12)))["num_classes"] == 12  # the teacher's logits win
    m = models.build_classifier(arch, **shape)
    assert m(x).shape == (6, 7)
    assert models.build_classifier(arch, m.state_dict())(x).shape == (6, 7)  # read back from the weights


def test_unet_classes_and_null_token():
    u = models.ConditionalUNet(base=8, mults=(1, 2), attention=False, num_classes=4)
    assert u.null_class == 4 and u.class_emb.num_embeddings == 5 and u.config["num_classes"] == 4
    x = torch.zeros(2, 1, 28, 28)
    assert u(x, torch.zeros(2, dtype=torch.long), torch.tensor([4, 3])).shape == x.shape


def test_synthetic_set_reads_as_torchvision_fashion_mnist(shared_data, tmp_path):
    import torchvision.datasets

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), np.repeat(np.arange(10), 3).astype(np.uint8)
    result = {"images": images, "labels": labels, "logits": rng.normal(size=(30, 10)).astype(np.float32),
              "requested": labels.astype(np.int64), "generated_logits": rng.normal(size=(30, 10)),
              "generated_requested": labels.astype(np.int64), "generated": 30, "threshold": 0.9, "final_threshold": 0.9,
              "rounds": 1, "acceptance_rate": 1.0, "agreement": 1.0, "label_mode": "teacher", "mode": "balanced",
              "complete": True}
    synth.save_synthetic_set(tmp_path / "set", result)
    synth.export_torchvision(tmp_path / "set", tmp_path / "tv", "fashion-mnist")
    train = torchvision.datasets.FashionMNIST(tmp_path / "tv", train=True, download=False)
    test = torchvision.datasets.FashionMNIST(tmp_path / "tv", train=False, download=False)
    assert len(train) == 30 and np.array_equal(train.data.numpy(), images) and train.targets.tolist() == labels.tolist()
    assert len(test) == 10000 and np.array_equal(test.targets.numpy(), data.load("fashion-mnist", "test")[1])


def test_error_share_within_a_group():
    cm = np.array([[5, 2, 0], [1, 5, 3], [0, 4, 5]])  # errors: 2+1 inside {0, 1}, 3+4 outside
    assert evaluate.error_share_within(cm, [0, 1]) == pytest.approx(3 / 10)
    assert evaluate.error_share_within(np.eye(3, dtype=int), [0, 1]) == 0.0


def test_dataset_comparison_with_and_without_an_mnist_run():
    from kr_utils import analysis

    other = {"teacher": 0.9, "acceptance": 0.4, "student": 0.85, "gap": 0.05}
    table, gap = analysis.dataset_comparison({}, other, "Fashion-MNIST")
    assert gap is None and list(table.columns) == ["Fashion-MNIST"]
    # one acceptance measure on both sides: at the configured threshold, not kept of generated
    m = {"teacher": {"test_accuracy": 0.99}, "synthetic_set": {"acceptance_rate": 0.8, "accepted_at_threshold": 0.7},
         "student": {"test_accuracy": {"mean": 0.98}}}
    table, gap = analysis.dataset_comparison(m, other, "Fashion-MNIST")
    assert gap == pytest.approx(0.01) and table["MNIST"].tolist() == pytest.approx([0.99, 0.7, 0.98, 0.01])
    assert table["Fashion-MNIST"].tolist() == [0.9, 0.4, 0.85, 0.05]
    # a record that predates the key: from its per-class table, weighted by what each class generated
    m["synthetic_set"] = {"acceptance_rate": 0.8, "confidence_per_class": {"generated": [100, 300],
                                                                          "frac_above_threshold": [0.5, 0.9]}}
    assert analysis.dataset_comparison(m, other, "Fashion-MNIST")[0]["MNIST"].iloc[1] == pytest.approx(0.8)
    m["synthetic_set"]["confidence_per_class"]["frac_above_threshold"] = [0.9, 0.5]
    assert analysis.dataset_comparison(m, other, "Fashion-MNIST")[0]["MNIST"].iloc[1] == pytest.approx(0.6)
    with pytest.raises(KeyError, match="confidence_per_class"):
        analysis.dataset_comparison({**m, "synthetic_set": {"acceptance_rate": 0.8}}, other, "Fashion-MNIST")
