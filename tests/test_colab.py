"""Colab readers: one repository URL (in _config.yml), install lines that name it, launch
buttons that open the notebooks' sources, and a package whose floors keep Colab's torch."""
import importlib.util
import os
from pathlib import Path

import nbformat
import pytest

from kr_utils import book

ROOT = Path(__file__).resolve().parents[1]
TWINS = sorted((ROOT / "notebooks").glob("*.py")) + sorted((ROOT / "notebooks" / "theory").glob("*.py"))


def test_config_names_the_repository_and_the_colab_button():
    import yaml
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["url"].startswith("https://github.com/")
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


@pytest.mark.parametrize("twin", TWINS, ids=lambda p: p.stem)
def test_install_line_names_the_config_url(twin):
    line = book.install_line()
    assert f"    # {line}" in twin.read_text().splitlines()
    nb = nbformat.read(twin.with_suffix(".ipynb"), as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert line in first_code.source and "google.colab" in first_code.source  # the first code cell installs


def test_sync_install_rewrites_every_twin(tmp_path):
    import shutil
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    text = (ROOT / "_config.yml").read_text().replace("knowledge-replication/kr-diffusion", "someone/elsewhere")
    (tmp_path / "_config.yml").write_text(text)
    changed = book.sync_install_cells(tmp_path)
    assert len(changed) == 2 * len(TWINS)
    nb = nbformat.read(tmp_path / "notebooks" / "05_student.ipynb", as_version=4)
    assert 'git+https://github.com/someone/elsewhere@main"' in nb.cells[1].source
    assert book.sync_install_cells(tmp_path) == []  # idempotent


def test_launch_buttons_point_at_the_sources():
    spec = importlib.util.spec_from_file_location("launch_paths", ROOT / "book" / "_ext" / "launch_paths.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    url = "https://colab.research.google.com/github/o/r/blob/main/./book/pipeline/05_student.ipynb"
    assert mod.source_path(url) == "https://colab.research.google.com/github/o/r/blob/main/notebooks/05_student.ipynb"
    assert mod.source_path(url.replace("pipeline/05_student", "theory/04_toy_diffusion_2d")).endswith(
        "/notebooks/theory/04_toy_diffusion_2d.ipynb")
    for built, source in mod.SOURCES:
        assert (ROOT / source).is_dir()


def test_glue_fallback_writes_what_myst_nb_writes(monkeypatch):
    """Without myst-nb (a bare Colab install) kr_utils.live.glue emits the same output."""
    import sys

    from kr_utils import live
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False, metadata=None: shown.append((obj, metadata)))
    monkeypatch.setattr("IPython.core.formatters.format_display_data", lambda v: ({"text/plain": repr(v)}, {}))
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import fails
    live.glue("answer", 42, display=False)
    (bundle, meta), = shown
    assert bundle == {"application/papermill.record/text/plain": "42"}
    assert meta["scrapbook"] == {"name": "answer", "mime_prefix": "application/papermill.record/"}


def test_torch_floor_check():
    import kr_utils
    kr_utils._check_torch("2.9.0+cu126")
    with pytest.raises(ImportError, match="torch >= 2.4"):
        kr_utils._check_torch("2.1.2")


@pytest.mark.parametrize("cuda, capability, gib, expected", [
    (True, (9, 0), 80, "gpu"),    # H100
    (True, (8, 0), 40, "gpu"),    # A100 40 GB
    (True, (7, 5), 15, "t4"),     # Colab's T4
    (True, (8, 9), 22, "t4"),     # L4
    (True, (7, 0), 32, "t4"),     # V100
    (False, None, None, "cpu"),
])
def test_auto_profile(monkeypatch, cuda, capability, gib, expected):
    import types

    import torch
    from kr_utils import config
    monkeypatch.delenv("KR_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i=0: types.SimpleNamespace(total_memory=(gib or 0) * 2 ** 30))
    assert config.get_config(None).profile == expected
    assert config.get_config("auto").profile == expected


def test_t4_profile_keeps_the_gpu_main_pipeline():
    """The t4 profile's main student comes from the same generator, set and recipe as the gpu
    profile's: only the studies around it are smaller."""
    from kr_utils import config
    t4, gpu = config.get_config("t4").as_dict(), config.get_config("gpu").as_dict()
    for section in ("diffusion", "synth"):
        assert t4[section] == gpu[section]
    same = lambda a, b, skip: {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}  # noqa: E731
    assert same(t4["student"], gpu["student"], {"seeds"}) and t4["student"]["seeds"] == [0, 1, 2]
    assert same(t4["sampler"], gpu["sampler"], {"knob_steps", "knob_per_class"})
    assert same(t4["teacher"], gpu["teacher"], {"study_seeds"})


SITE = os.environ.get("KR_BUILT_SITE")


@pytest.mark.skipif(not SITE, reason="needs a built book: KR_BUILT_SITE=<_build/html> (tests/run_all.sh sets it)")
def test_every_chapter_page_has_a_colab_link():
    repo = book.repository()
    org_repo = repo["url"].removeprefix("https://github.com/")
    for twin in TWINS:
        group = "theory" if twin.parent.name == "theory" else "pipeline"
        page = Path(SITE) / "book" / group / f"{twin.stem}.html"
        sub = "notebooks/theory" if group == "theory" else "notebooks"
        link = f"https://colab.research.google.com/github/{org_repo}/blob/{repo['branch']}/{sub}/{twin.stem}.ipynb"
        assert link in page.read_text(), f"{page} lacks {link}"
