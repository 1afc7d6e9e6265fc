"""The notebooks: each .ipynb is in sync with its text twin, carries no outputs, and has a
papermill parameters cell holding raw values only."""
import ast
from pathlib import Path

import jupytext
import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
TWINS = sorted(NB_DIR.glob("*.py")) + sorted(NB_DIR.glob("theory/*.py"))


def test_every_notebook_has_a_twin_and_is_run_by_the_book():
    from kr_utils.book import NOTEBOOKS
    ipynbs = sorted(NB_DIR.glob("*.ipynb")) + sorted(NB_DIR.glob("theory/*.ipynb"))
    assert sorted(p.stem for p in TWINS) == sorted(p.stem for p in ipynbs) == sorted(NOTEBOOKS)
    assert len(TWINS) == 16


def test_toc_lists_every_chapter():
    toc = (NB_DIR.parent / "_toc.yml").read_text()
    for twin in TWINS:
        group = "theory" if twin.parent.name == "theory" else "pipeline"
        assert f"- file: book/{group}/{twin.stem}\n" in toc, twin


@pytest.mark.parametrize("twin", TWINS, ids=lambda p: p.stem)
def test_pair_in_sync(twin):
    text = jupytext.read(twin)
    nb = nbformat.read(twin.with_suffix(".ipynb"), as_version=4)
    a = [(c.cell_type, c.source.strip()) for c in text.cells]
    b = [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert a == b, f"{twin.name} and its .ipynb differ: run `jupytext --sync {twin}`"


@pytest.mark.parametrize("twin", TWINS, ids=lambda p: p.stem)
def test_no_outputs_and_parameters_cell(twin):
    nb = nbformat.read(twin.with_suffix(".ipynb"), as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    tree = ast.parse(params[0].source)
    for node in tree.body:  # raw values only: derived values would not be recomputed
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant), ast.unparse(node)
    assert "profile" in {t.id for n in tree.body for t in n.targets}


def test_environment_yml_mirrors_pyproject():
    import re
    import tomllib
    root = NB_DIR.parent
    proj = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = set(proj["dependencies"]) | {d for k in ("book", "test") for d in proj["optional-dependencies"][k]
                                        if "==" in d}
    env = set(re.findall(r"^\s*- ([\w\-\.]+==[\w\.\-]+)\s*$", (root / "environment.yml").read_text(), re.M))
    assert pins == env


def test_book_runner_rejects_unknown_names(tmp_path):
    from kr_utils.book import run_notebooks
    with pytest.raises(SystemExit, match="unknown notebooks"):
        run_notebooks("smoke", tmp_path, only=["03_generaton"])
