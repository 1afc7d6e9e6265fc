
import numpy as np
import pytest
import torch

from kr_utils import data


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_roundtrip(tmp_path, suffix):
    imgs = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    lbls = np.arange(7, dtype=np.uint8) % 10
    data.write_idx(tmp_path / f"i{suffix}", imgs)
    data.write_idx(tmp_path / f"l{suffix}", lbls)
    a, b = data.read_images_labels(tmp_path / f"i{suffix}", tmp_path / f"l{suffix}", expected_count=7)
    np.testing.assert_array_equal(a, imgs)
    np.testing.assert_array_equal(b, lbls)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves nothing behind


def test_truncated_file_names_file_and_sizes(tmp_path):
    data.write_idx(tmp_path / "i", np.zeros((5, 28, 28), np.uint8))
    raw = (tmp_path / "i").read_bytes()
    (tmp_path / "i").write_bytes(raw[:-100])
    with pytest.raises(data.IdxFormatError, match=r"i: header says shape \(5, 28, 28\) = 3920 bytes.*3820"):
        data.read_idx(tmp_path / "i")


def test_wrong_magic_is_reported(tmp_path):
    data.write_idx(tmp_path / "l", np.zeros(5, np.uint8))
    with pytest.raises(data.IdxFormatError, match="magic number 2049, expected 2051"):
        data.read_idx(tmp_path / "l", data.IMAGE_MAGIC)


def test_corrupted_gzip_is_reported(tmp_path):
    data.write_idx(tmp_path / "i.gz", np.zeros((5, 28, 28), np.uint8))
    raw = (tmp_path / "i.gz").read_bytes()
    (tmp_path / "i.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.IdxFormatError, match="i.gz: cannot be read as gzip"):
        data.read_idx(tmp_path / "i.gz")


def test_count_mismatch_between_images_and_labels(tmp_path):
    data.write_idx(tmp_path / "i", np.zeros((5, 28, 28), np.uint8))
    data.write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(data.IdxFormatError, match="5 images but .* 4 labels"):
        data.read_images_labels(tmp_path / "i", tmp_path / "l")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        data.read_idx(tmp_path / "nothere")


def test_load_mnist_from_env(mnist_dir, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(mnist_dir))
    x, y = data.load_mnist("test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y, minlength=10).sum() == 10000 and y.max() == 9
    assert y[:5].tolist() == [7, 2, 1, 0, 4]  # MNIST's published first test labels


def test_load_mnist_bad_env_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        data.load_mnist("test")


def test_pixel_convention_roundtrip_and_background():
    u = np.random.default_rng(1).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    u[:, 0, 0] = 0
    x = data.to_model_range(u)
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert torch.all(x[:, 0, 0, 0] == -1)  # black background is -1 in every model
    np.testing.assert_array_equal(data.to_uint8(x), u)
