"""The table of bad inputs: files, parameters and folders, each with the error it must raise
(book/reproduce.md, "Troubleshooting", lists the same cases). Every message names the file or parameter;
none suggests loading an untrusted pickle."""
import gzip
import os
import pickle
from pathlib import Path

import pytest
import torch

import kr_utils
from kr_utils import book, checkpoints, config, data, distill, runtime, store

ROOT = Path(__file__).resolve().parents[1]


class Evil:  # a pickle that needs more than tensors and plain values to load
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _teacher_ckpt(path, profile="smoke", kind="teacher"):
    checkpoints.save_checkpoint(path, torch.nn.Linear(2, 2), kind=kind, config={"arch": "x"}, profile=profile, seed=0)
    return path


def _write(path, data_bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data_bytes)
    return path


# ---- files: (name, make the bad file under tmp, the call, error type, message pattern)
def random_bytes(tmp):
    return _write(tmp / "teacher.pt", os.urandom(4096))


def truncated(tmp):
    full = _teacher_ckpt(tmp / "full.pt").read_bytes()
    return _write(tmp / "teacher.pt", full[: len(full) // 2])


def empty(tmp):
    return _write(tmp / "teacher.pt", b"")


def evil_pickle(tmp):
    return _write(tmp / "teacher.pt", pickle.dumps(Evil()))


def evil_torch_archive(tmp):
    torch.save({"kind": "teacher", "x": Evil()}, tmp / "teacher.pt")
    return tmp / "teacher.pt"


def plain_tensor(tmp):
    torch.save(torch.zeros(3), tmp / "teacher.pt")
    return tmp / "teacher.pt"


def other_kind(tmp):
    return _teacher_ckpt(tmp / "teacher.pt", kind="diffusion")


def other_profile(tmp):
    return _teacher_ckpt(tmp / "teacher.pt", profile="cpu")


FILES = [
    ("random bytes", random_bytes, "teacher.pt cannot be read as a teacher checkpoint: it is not a torch file"),
    ("cut short", truncated, "teacher.pt cannot be read as a teacher checkpoint: it is a torch archive .* cut short"),
    ("empty", empty, "teacher.pt cannot be read .*: the file is empty"),
    ("foreign pickle", evil_pickle, "teacher.pt cannot be read .*(not a torch file|not a file kr_utils wrote)"),
    ("torch archive with objects", evil_torch_archive, "teacher.pt cannot be read .*not a file kr_utils wrote"),
    ("a tensor, not a checkpoint", plain_tensor, "teacher.pt holds no kr_utils checkpoint"),
    ("another kind", other_kind, "teacher.pt holds a 'diffusion' checkpoint, expected 'teacher'"),
    ("another profile", other_profile, "teacher.pt holds a checkpoint of profile 'cpu', expected 'smoke'"),
]


@pytest.mark.parametrize("name, make, message", FILES, ids=[f[0] for f in FILES])
def test_bad_checkpoint_files(tmp_path, name, make, message, capfd):
    path = make(tmp_path)
    with pytest.raises(store.UnreadableFileError, match=message) as err:
        checkpoints.load_checkpoint(path, "teacher", profile="smoke")
    text = str(err.value)
    assert str(path) in text and "chapter 1" in text          # names the file and what rebuilds it
    assert "weights_only" not in text and "weights_only=False" not in text
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    assert "pwned" not in capfd.readouterr().out                # nothing in the file ran


@pytest.mark.parametrize("name, make", [(f[0], f[1]) for f in FILES[:5]], ids=[f[0] for f in FILES[:5]])
def test_unreadable_cache_entry_is_rebuilt_with_a_line(tmp_path, name, make, capsys):
    path = make(tmp_path)
    assert store.cached(path, "k", lambda: 42) == 42
    out = capsys.readouterr().out
    assert f"rebuilding {path.name}: {path}" in out and "weights_only" not in out
    assert store.cached(path, "k", lambda: 0) == 42      # the rebuilt entry is used next time


def test_unreadable_resume_state_starts_over(tmp_path, capsys):
    resume = _write(tmp_path / "run.partial.pt", os.urandom(100))
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    _, hist = distill.train_classifier(kr_utils.models.build_classifier("simple_cnn"), (x, y), (x, y),
                                       config.ClassifierRecipe(arch="simple_cnn", epochs=1, batch_size=8, lr=0.001, patience=2),
                                       seed=0, device="cpu", options=distill.ClassifierOptions(resume_path=resume))
    assert "starting this training run over" in capsys.readouterr().out and hist["epoch"] == [1]


def test_missing_checkpoint_names_the_chapter(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.pt \(run chapter 2 \(02_diffusion\)"):
        checkpoints.load_checkpoint(tmp_path / "nope.pt", "diffusion")


# ---- data files and folders
def test_truncated_idx_file(tmp_path):
    data.write_idx(tmp_path / "i.gz", torch.zeros(5, 28, 28, dtype=torch.uint8).numpy())
    raw = gzip.decompress((tmp_path / "i.gz").read_bytes())
    (tmp_path / "i.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(data.IdxFormatError, match=r"i.gz: header says shape"):
        data.read_idx(tmp_path / "i.gz", 2051)


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_bad_data_folder(tmp_path, monkeypatch, folder):
    d = tmp_path / "data"
    if folder == "empty":
        d.mkdir()
    monkeypatch.setenv("KR_DATA_DIR", str(d))
    with pytest.raises(FileNotFoundError, match=str(d)):
        data.load_mnist("test")


# ---- parameters
PARAMETERS = [
    (lambda: kr_utils.get_config("smoke", synth__threshold=1.5), config.ConfigError, r"synth.threshold must be in \(0, 1\]"),
    (lambda: kr_utils.get_config("smoke", synth__per_class=-3), config.ConfigError, "synth.per_class must be a positive"),
    (lambda: kr_utils.get_config("laptop"), config.ConfigError, "unknown profile 'laptop'"),
    (lambda: kr_utils.get_config("smoke", synth__treshold=0.5), config.ConfigError, "unknown override 'synth__treshold'"),
    (lambda: kr_utils.get_config("smoke", student__arch="vgg"), config.ConfigError, "student.arch must be one of"),
    (lambda: book.run_notebooks("smoke", Path("/nonexistent"), only=["05_studnet"]), SystemExit, "unknown notebooks"),
    (lambda: book.run_notebooks("laptop", Path("/nonexistent")), SystemExit, "unknown profile 'laptop'"),
]


@pytest.mark.parametrize("call, error, message", PARAMETERS, ids=[p[2][:30] for p in PARAMETERS])
def test_bad_parameters(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bad_precision_variable(monkeypatch):
    monkeypatch.setenv("KR_PRECISION", "half")
    with pytest.raises(ValueError, match="KR_PRECISION='half'"):
        runtime.precision("cpu")


def test_reproduce_page_lists_the_same_cases():
    text = (ROOT / "book" / "reproduce.md").read_text()
    for phrase in ("cannot be read as", "holds a 'diffusion' checkpoint, expected 'teacher'", "of profile",
                   "rebuilding", "starting this training run over", "header says shape", "KR_DATA_DIR",
                   "unknown profile", "unknown override", "ran past the cell timeout", "KR_PRECISION"):
        assert phrase in text, f"the reproduce page's troubleshooting lacks {phrase!r}"


def test_a_timeout_without_a_cell_index_names_the_running_cell():
    from nbclient.exceptions import CellTimeoutError
    err = CellTimeoutError("A cell timed out while it was being executed, after 300 seconds.")
    text = book._describe_failure(err, "theory/05_guidance_on_the_toy", Path("out.ipynb"), 300,
                                  running=(8, "n = th.toy_samples"))
    assert text.startswith("theory/05_guidance_on_the_toy: cell 8 ('n = th.toy_samples') ran past the cell timeout")
