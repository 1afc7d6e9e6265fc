"""Stage: data. MNIST idx files (read, write, validate), the project's pixel convention,
and tensors/loaders for training.

Pixel convention, end to end: images are stored as uint8 in [0, 255] with a black (0)
background, exactly like MNIST; every model sees ``x / 127.5 - 1`` in [-1, 1], so the
background is -1 for real and synthetic digits alike (:func:`to_model_range` and
:func:`to_uint8` are the only two conversions).
"""
from __future__ import annotations

import functools
import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .store import atomic_write_bytes

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}


class IdxFormatError(ValueError):
    """An idx file that is truncated, corrupted or not what was expected."""


def _open(path: Path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an idx file (raw or .gz) into a uint8 array, checking magic, dims and size."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"idx file not found: {path}")
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # bad gzip stream, truncated .gz
        raise IdxFormatError(f"{path}: cannot be read as {'gzip' if path.suffix == '.gz' else 'raw'} "
                             f"idx data ({e})") from e
    if len(raw) < 8:
        raise IdxFormatError(f"{path}: {len(raw)} bytes, too short for an idx header")
    magic = struct.unpack(">I", raw[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise IdxFormatError(f"{path}: magic number {magic}, expected {expected_magic} "
                             f"({'images' if expected_magic == IMAGE_MAGIC else 'labels'})")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise IdxFormatError(f"{path}: magic {magic:#x} is not an unsigned-byte idx file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(f"{path}: truncated header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise IdxFormatError(f"{path}: header says shape {shape} = {expected} bytes of data, "
                             f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzip if the name ends in .gz), atomically."""

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"idx arrays must be uint8, got {array.dtype}")
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    atomic_write_bytes(path, payload)


def read_images_labels(images_path, labels_path, expected_count: int | None = None, num_classes: int | None = None):
    """Read a matching pair of idx image/label files and check them against each other (and,
    with ``num_classes``, every label against the classes of the dataset)."""
    images = read_idx(images_path, IMAGE_MAGIC)
    labels = read_idx(labels_path, LABEL_MAGIC)
    if images.ndim != 3:
        raise IdxFormatError(f"{images_path}: images must be (N, H, W), got shape {images.shape}")
    if labels.ndim != 1:
        raise IdxFormatError(f"{labels_path}: labels must be 1-D, got shape {labels.shape}")
    if len(images) != len(labels):
        raise IdxFormatError(f"{images_path} has {len(images)} images but {labels_path} "
                             f"has {len(labels)} labels")
    if expected_count is not None and len(images) != expected_count:
        raise IdxFormatError(f"{images_path}: {len(images)} images, expected {expected_count}")
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise IdxFormatError(f"{labels_path}: label {labels.max()} outside 0-{num_classes - 1}")
    return images, labels


# ------------------------------------------------------------------------------ the datasets


@dataclass(frozen=True)
class DatasetSource:
    """Where one dataset of the book comes from: its name in the profile (``dataset``), its
    class in ``torchvision.datasets`` (which downloads it, and names its classes), the
    environment variable naming its folder, the folder's usual name beside the others
    (``../shared/data/<folder>``), what one item is called in the text, and its training set's
    mean pixel (on [0, 1]), by which a folder holding another dataset is recognised."""

    name: str
    torchvision: str
    env: str
    folder: str
    item: str
    mean_pixel: float


DATASETS = {
    "mnist": DatasetSource("mnist", "MNIST", "KR_DATA_DIR", "mnist", "digit", 0.1307),
    "fashion-mnist": DatasetSource("fashion-mnist", "FashionMNIST", "KR_FASHION_DIR", "fashion-mnist", "image", 0.2860),
}
DATA_ENV = DATASETS["mnist"].env
FASHION_ENV = DATASETS["fashion-mnist"].env


def source(dataset: str) -> DatasetSource:
    """The :class:`DatasetSource` of ``dataset``; an unknown name is a clear error."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[dataset]


@dataclass(frozen=True)
class DatasetInfo:
    """What the pipeline needs to know of a dataset, read from the data: the shape of one
    image (channels, height, width) from the idx header, the class names from torchvision's
    dataset class, their number, and the word for one item."""

    name: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    item: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def class_names(dataset: str = "mnist") -> tuple[str, ...]:
    """The class names of ``dataset``, from its torchvision class (``"0 - zero"`` shown as
    ``"0"`` for MNIST; ``"T-shirt/top"``, ``"Trouser"``, ... for Fashion-MNIST)."""
    import torchvision.datasets

    return tuple(c.split(" - ")[0] for c in getattr(torchvision.datasets, source(dataset).torchvision).classes)


@functools.lru_cache(maxsize=None)
def _info(dataset: str, folder: str | None) -> DatasetInfo:
    images, _ = load(dataset, "test")
    return DatasetInfo(dataset, (1, *images.shape[1:]), class_names(dataset), source(dataset).item)


def info(dataset: str = "mnist") -> DatasetInfo:
    """The :class:`DatasetInfo` of ``dataset`` (read once per folder)."""
    folder = dataset_dir(dataset)
    return _info(dataset, str(folder) if folder else None)


def dataset_dir(dataset: str = "mnist") -> Path | None:
    """The folder of ``dataset``'s idx files, or None (then torchvision downloads it):

    - the dataset's own variable (``$KR_DATA_DIR`` for MNIST, ``$KR_FASHION_DIR`` for
      Fashion-MNIST) when set;
    - else, with ``$KR_DATA_DIR`` set, its usual folder inside it or beside it (the layout of
      ``../shared/data``: ``mnist/`` and ``fashion-mnist/`` side by side);
    - with ``$KR_DATA_DIR`` set and no such folder, a clear error: no download is tried then.
    """
    src = source(dataset)
    if os.environ.get(src.env):
        return Path(os.environ[src.env])
    base = os.environ.get(DATA_ENV)
    if not base:
        return None
    base = Path(base)
    for candidate in (base / src.folder, base.parent / src.folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{dataset}: no folder {src.folder!r} in or beside ${DATA_ENV}={base}; "
                            f"set ${src.env} to the folder holding its idx files")


def load(dataset: str = "mnist", split: str = "train"):
    """``dataset`` (a name of :data:`DATASETS`) as uint8 arrays ``(images[N,H,W], labels[N])``.

    Reads its folder (:func:`dataset_dir`; CI points ``$KR_DATA_DIR`` at ``../shared/data/mnist``),
    otherwise downloads once with torchvision into ``~/.cache/kr_utils``. A folder holding
    another dataset (Fashion-MNIST where MNIST was asked for) is a clear error, recognised by
    the images' mean pixel."""
    src = source(dataset)
    folder = dataset_dir(dataset)
    images, labels = _load_idx_dataset(src, folder, split)
    _check_is(src, images, folder, split)
    return images, labels


def _check_is(src: DatasetSource, images: np.ndarray, folder: Path | None, split: str) -> None:
    mean = float(images[:5000].mean()) / 255
    if abs(mean - src.mean_pixel) <= 0.04:
        return
    like = [s.name for s in DATASETS.values() if s is not src and abs(mean - s.mean_pixel) <= 0.04]
    where = folder or "torchvision's download"
    raise IdxFormatError(f"{where}: the {split} images' mean pixel is {mean:.3f}, not {src.name}'s "
                         f"{src.mean_pixel:.3f}" + (f"; it looks like {like[0]}" if like else "")
                         + f": point ${src.env} at a folder of {src.name}")


def load_mnist(split: str = "train"):
    """MNIST as uint8 arrays ``(images[N,28,28], labels[N])`` (:func:`load`)."""
    return load("mnist", split)


def _load_idx_dataset(src: DatasetSource, folder: Path | None, split: str):
    name = src.torchvision
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    img_stem, lbl_stem, count = SPLITS[split]
    if folder is None:
        import torchvision.datasets

        root = Path.home() / ".cache" / "kr_utils"
        getattr(torchvision.datasets, name)(root, train=(split == "train"), download=True)
        folder = root / name / "raw"
    elif not folder.is_dir():
        raise FileNotFoundError(f"{name}: {folder} is not a folder")
    return read_images_labels(_find(folder, img_stem, src), _find(folder, lbl_stem, src), count,
                              num_classes=len(class_names(src.name)))


def _find(folder: Path, stem: str, src: DatasetSource | None = None) -> Path:
    src = src or DATASETS["mnist"]
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: neither {stem}.gz nor {stem} found "
                            f"(set ${src.env} to a folder holding the {src.name} idx files)")


def to_model_range(images_uint8) -> torch.Tensor:
    """uint8 (N,28,28) -> float (N,1,28,28) in [-1, 1]; background 0 -> -1."""
    x = torch.as_tensor(np.asarray(images_uint8))
    return (x.float().div(127.5).sub(1.0)).unsqueeze(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N,1,28,28) in [-1, 1] -> uint8 (N,28,28); the inverse of :func:`to_model_range`."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.squeeze(1).cpu().numpy()


def train_val_split(n: int, val_size: int, seed: int):
    """Index arrays for a reproducible random split of ``n`` items."""
    if not 0 < val_size < n:
        raise ValueError(f"val_size must be in (0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return perm[val_size:], perm[:val_size]


def tensor_dataset(images_uint8, targets) -> torch.utils.data.TensorDataset:
    """A dataset of model-range images and integer labels or probability targets."""
    t = torch.as_tensor(np.asarray(targets))
    t = t.long() if t.ndim == 1 else t.float()
    return torch.utils.data.TensorDataset(to_model_range(images_uint8), t)


def split_tensors(split: str, subset: int | None = None, dataset: str = "mnist"):
    """The real ``split`` ('train' or 'test') of ``dataset`` as (x in [-1,1], labels); ``subset``
    keeps the first n items (the smoke profile)."""
    images, labels = load(dataset, split)
    if subset:
        images, labels = images[:subset], labels[:subset]
    return to_model_range(images), torch.as_tensor(labels).long()


def test_tensors(test_subset: int | None = None, dataset: str = "mnist"):
    """The real test set as (x in [-1,1], labels); ``test_subset`` keeps the first n."""
    return split_tensors("test", test_subset, dataset)


def validation_tensors(val_size: int, seed: int, dataset: str = "mnist"):
    """The declared validation split of the real *training* digits: the ``val_size`` digits that
    :func:`train_val_split` (seeded by ``seed``) holds out of the 60,000, which no model trains on:
    not the teacher, the diffusion model, any generator (they learn from :func:`fit_digits`) nor
    any student. Every choice the book makes between
    students (which cell, which checkpoint's student to show) is made on these, or on synthetic
    validation digits; the test set only scores. Returns (x in [-1,1], labels)."""
    images, labels = load(dataset, "train")
    _, va_idx = train_val_split(len(images), val_size, seed)
    return to_model_range(images[va_idx]), torch.as_tensor(labels[va_idx]).long()


def fit_indices(n: int, val_size: int, seed: int, subset: int | None = None) -> np.ndarray:
    """The indices of the ``n`` real training digits a model may learn from: all but the
    declared validation digits of :func:`validation_tensors` (``val_size``, ``seed``), in the
    split's order; ``subset`` keeps the first of them."""
    idx, _ = train_val_split(n, val_size, seed)
    return idx[:subset] if subset else idx


def fit_digits(cfg, subset: int | None = None, seed: int | None = None):
    """The real training digits every model of the book learns from, as uint8 images and labels:
    the training set less the declared validation digits (``cfg.teacher.val_size`` of them, drawn
    by ``seed``, default ``cfg.seed``: :func:`validation_tensors`), ``subset`` keeping the first
    of the rest. The teacher, the diffusion model and every generator train on these, so the
    validation digits on which the book makes its choices are digits no model has seen
    (``tests/test_held_out.py``). ``cfg``: a :class:`kr_utils.config.Profile`."""
    images, labels = load(cfg.dataset, "train")
    idx = fit_indices(len(images), cfg.teacher.val_size, cfg.seed if seed is None else seed, subset)
    return images[idx], labels[idx]


def fit_tensors(cfg, subset: int | None = None, seed: int | None = None):
    """:func:`fit_digits` as (x in [-1,1], labels)."""
    images, labels = fit_digits(cfg, subset, seed)
    return to_model_range(images), torch.as_tensor(labels).long()


def held_out(cfg, seed: int | None = None) -> dict:
    """What a cache key of a model trained on :func:`fit_digits` records of its data."""
    return {"held_out_val": cfg.teacher.val_size, "split_seed": cfg.seed if seed is None else seed}


class Batcher:
    """Index batches over ``n`` in-memory items (tensors stay where they are, CPU or GPU, which
    is faster than a DataLoader here): the one batcher of every training loop and evaluation.

    - ``generator=None``: the items in order, once (:meth:`epoch`; evaluation);
    - ``replace=False``: a fresh permutation drawn from ``generator`` each epoch, epochs chained
      one after the other by iteration; ``drop_last`` skips a short last batch;
    - ``replace=True``: each batch drawn independently, with replacement.

    Its position (the epoch's permutation and how far into it) is part of a training run's
    saved state (:meth:`state_dict`), so a resumed run continues with the very same batches.

    ``device`` (the ``device_batches`` lever of :func:`kr_utils.runtime.levers`): each epoch's
    permutation, drawn on the CPU as without it, is copied to ``device`` once, so a training
    step copies no indices from the host; and :attr:`draws` (the generator for a loop's own
    random draws, such as augmentation) is then a generator on that device, seeded from
    ``generator`` and saved with the batcher's state.
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator | None = None,
                 drop_last: bool = False, replace: bool = False, device=None):
        if n < 1 or batch_size < 1:
            raise ValueError(f"a batcher needs n >= 1 items and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if drop_last and batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} items and drop_last leaves no batch")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.drop_last, self.replace = drop_last, replace
        self.epoch_index, self._order, self._pos = 0, None, 0
        self.device = torch.device(device) if device is not None else None
        self.draws = generator
        if self.device is not None and self.device.type != "cpu" and generator is not None:
            self.draws = torch.Generator(self.device).manual_seed(generator.initial_seed())

    def epoch(self) -> list[torch.Tensor]:
        """The batches of one pass (shuffled when the batcher has a generator)."""
        idx = torch.randperm(self.n, generator=self.generator) if self.generator is not None else torch.arange(self.n)
        if self.device is not None:
            idx = idx.to(self.device)
        return list(idx.split(self.batch_size))

    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        if self.replace:
            idx = torch.randint(0, self.n, (self.batch_size,), generator=self.generator)
            return idx.to(self.device) if self.device is not None else idx
        while True:
            if self._order is None or self._pos >= len(self._order):
                self._order, self._pos = self.epoch(), 0
                self.epoch_index += 1
            idx = self._order[self._pos]
            self._pos += 1
            if not (self.drop_last and len(idx) < self.batch_size):
                return idx

    def at_epoch_end(self) -> bool:
        """Whether the last batch served ended an epoch (always False with replacement)."""
        if self.replace or self._order is None:
            return False
        rest = self._order[self._pos:]
        return not rest or (self.drop_last and all(len(i) < self.batch_size for i in rest))

    def state_dict(self) -> dict:
        return {"epoch_index": self.epoch_index, "pos": self._pos,
                "order": None if self._order is None else torch.cat(self._order).cpu() if self._order else torch.zeros(0),
                "generator": self.generator.get_state() if self.generator is not None else None,
                "draws": self.draws.get_state() if self.draws is not None and self.draws is not self.generator else None}

    def load_state_dict(self, state: dict) -> None:
        self.epoch_index, self._pos = state["epoch_index"], state["pos"]
        order = state["order"]
        if order is not None and self.device is not None:
            order = order.to(self.device)
        self._order = None if order is None else list(order.split(self.batch_size))
        if state["generator"] is not None:
            self.generator.set_state(state["generator"])
        if state.get("draws") is not None and self.draws is not self.generator:
            self.draws.set_state(state["draws"])


def classes_in_turn(labels, n: int, num_classes: int = 10) -> list[int]:
    """Indices of ``n`` items taking the classes 0, 1, ..., ``num_classes - 1`` in turn, each
    the next unused item of its class in order (n = 10: the first digit of each class; n = 20:
    the first two of each). A class with too few items is a clear error."""
    labels = np.asarray(labels)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive number of items, got {n!r}")
    out = []
    for i in range(n):
        c, k = i % num_classes, i // num_classes
        members = np.flatnonzero(labels == c)
        if k >= len(members):
            raise ValueError(f"{n} items with classes in turn need {k + 1} of class {c}, which has {len(members)}")
        out.append(int(members[k]))
    return out
