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
    assert len(TWINS) == 20


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


@pytest.mark.parametrize("twin", TWINS, ids=lambda p: p.stem)
def test_one_set_up_call(twin):
    """Every chapter sets itself up with pipeline.open_chapter (config, seed, device, artifacts
    folder, clock) in the cell after its parameters, not with a preamble of its own; it names
    itself as its stage (a theory chapter as T1-T9) and closes its clock (ch.close())."""
    nb = nbformat.read(twin.with_suffix(".ipynb"), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    setup = next(c.source for c in nb.cells[at + 1:] if c.cell_type == "code")
    assert setup.count("pipeline.open_chapter(") == 1 and sum(c.count("open_chapter(") for c in code) == 1
    for idiom in ("StageClock", "runtime.device()", "seed = cfg.seed if seed is None", "store.artifact_dir(profile)"):
        assert not any(idiom in c for c in code), (twin.name, idiom)
    setup_cell = next(c for c in nb.cells[at + 1:] if c.cell_type == "code")
    assert "hide-input" in setup_cell.metadata.get("tags", []), f"{twin.name}: its set-up is plumbing, shown on request"
    stage = f"T{int(twin.stem[:2])}" if twin.parent.name == "theory" else twin.stem
    assert f'open_chapter("{stage}"' in setup, twin.name  # its cost recorded under its own name
    assert any(c.strip().endswith("ch.close()") for c in code), twin.name


def test_pyproject_states_floors_and_constraints_pin_them():
    """The package states floors (Colab keeps its torch); constraints.txt pins every package it
    names, within those floors, and environment.yml repeats the same pins."""
    import re
    import tomllib

    from packaging.requirements import Requirement
    root = NB_DIR.parent
    proj = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(d) for d in proj["dependencies"] + [d for k in ("book", "test")
                                                             for d in proj["optional-dependencies"][k]]]
    reqs = [r for r in reqs if r.name != "kr_utils"]
    assert all("==" not in str(r.specifier) for r in reqs), "pyproject.toml pins a version: use a floor"
    norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
    pins = dict(re.findall(r"^([\w\-\.]+)==([\w\.\-\+]+)\s*$", (root / "constraints.txt").read_text(), re.M))
    pins = {norm(k): v for k, v in pins.items()}
    for r in reqs:
        assert norm(r.name) in pins, f"constraints.txt lacks {r.name}"
        assert r.specifier.contains(pins[norm(r.name)], prereleases=True), f"{r.name}=={pins[norm(r.name)]} outside {r}"
    env = dict(re.findall(r"^\s*- ([\w\-\.]+)==([\w\.\-\+]+)\s*$", (root / "environment.yml").read_text(), re.M))
    assert {norm(k): v for k, v in env.items()} == {norm(r.name): pins[norm(r.name)] for r in reqs}


def test_book_runner_rejects_unknown_names(tmp_path):
    from kr_utils.book import run_notebooks
    with pytest.raises(SystemExit, match="unknown notebooks"):
        run_notebooks("smoke", tmp_path, only=["03_generaton"])


@pytest.mark.parametrize("path", TWINS + sorted((NB_DIR.parent / "book").rglob("*.md")), ids=lambda p: p.name)
def test_no_control_characters(path):
    """A "\\beta" in a non-raw string, or pasted text, leaves control characters (\\b, \\a) that
    render as garbage in a formula."""
    import re
    bad = [(i + 1, repr(m.group())) for i, line in enumerate(path.read_text().splitlines())
           for m in re.finditer(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", line)]
    assert not bad, f"{path}: control characters at lines {bad}"


def test_book_runner_estimates_a_chapter_from_its_cost_from_scratch(monkeypatch):
    """A recorded run that reused cached results has a short wall time; the estimate is its
    cost from scratch (compute_time_s) where it is recorded, else the wall time."""
    from kr_utils import book, pipeline

    monkeypatch.setattr(pipeline, "recorded_metrics", lambda profile: {
        "wall_time_s": {"10_fashion_mnist": 600.0, "01_teacher": 7.0},
        "compute_time_s": {"10_fashion_mnist": 1600.0}, "theory_wall_time_s": {"T2": 8.0}})
    got = book.recorded_chapter_seconds("cpu")
    assert got["pipeline/10_fashion_mnist"] == 1600.0 and got["pipeline/01_teacher"] == 7.0
    assert got[f"theory/{book.GROUPS[1][2][1]}"] == 8.0
