"""kr_utils.live: widgets only where a live front end can talk to them (the book never hangs)."""
import json
from pathlib import Path

import pytest

from kr_utils import live

ROOT = Path(__file__).resolve().parents[1]


class ZMQInteractiveShell:  # the class name is what the decision reads
    pass


class Shell:  # Colab's google.colab._shell.Shell
    pass


class TerminalInteractiveShell:
    pass


@pytest.mark.parametrize("env, shell, parent, expected", [
    ({}, ZMQInteractiveShell(), "/usr/bin/python3 /usr/local/bin/jupyter-lab", True),
    ({}, Shell(), "/usr/bin/python3 -m colab_kernel_launcher", True),
    ({}, ZMQInteractiveShell(), "/venv/bin/python /venv/bin/papermill a.ipynb b.ipynb", False),
    ({}, ZMQInteractiveShell(), "python -m kr_utils.book --profile cpu", False),
    ({}, ZMQInteractiveShell(), "python -m pytest --nbval-lax x.ipynb", False),
    ({}, ZMQInteractiveShell(), "jupyter nbconvert --to notebook --execute x.ipynb", False),
    ({}, None, "bash", False),                                # a plain script: no kernel
    ({}, TerminalInteractiveShell(), "bash", False),          # terminal IPython: no widget front end
    ({"KR_HEADLESS": "1"}, ZMQInteractiveShell(), "jupyter-lab", False),
    ({"KR_WIDGETS": "0"}, ZMQInteractiveShell(), "jupyter-lab", False),
    ({"KR_WIDGETS": "1"}, None, "papermill", True),           # forced on by the user
])
def test_frontend_is_live_decision(env, shell, parent, expected):
    assert live.frontend_is_live(env=env, shell=shell, parent=parent) is expected


def test_this_test_process_is_not_live():
    assert live.frontend_is_live() is False  # pytest: no kernel


def test_show_controls_never_builds_headless(capsys):
    def build():
        raise AssertionError("a widget was built in a headless run")

    assert live.show_controls(build, static="static figure", live=False) is None
    assert "static figure" in capsys.readouterr().out


def test_show_controls_builds_when_live():
    built = []
    assert live.show_controls(lambda: built.append("w") or "widget", live=True) == "widget"
    assert built == ["w"]


def test_no_notebook_builds_widgets_itself():
    """Every widget goes through kr_utils.live, whose decision is tested above."""
    for twin in list((ROOT / "notebooks").glob("*.py")) + list((ROOT / "notebooks" / "theory").glob("*.py")):
        text = twin.read_text()
        assert "import ipywidgets" not in text and "widgets.interact" not in text, twin.name


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_widget_chapter_headless_three_times_in_a_row(tmp_path, monkeypatch):
    """Theory chapter T4 (a live slider) run headless three times: twice through the book's
    runner (KR_HEADLESS), once by papermill straight from this process with KR_HEADLESS unset
    (the kernel's parent is pytest). Each run must finish inside the smoke cell timeout and hold
    no widget output."""
    import papermill as pm
    from kr_utils import book

    monkeypatch.setenv("KR_PROFILE", "smoke")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    name = "04_toy_diffusion_2d"
    for run in range(2):
        book.run_notebooks("smoke", tmp_path / f"run{run}", only=[name])
    monkeypatch.delenv("KR_HEADLESS", raising=False)
    monkeypatch.delenv("KR_WIDGETS", raising=False)
    src = ROOT / "notebooks" / "theory" / f"{name}.ipynb"
    pm.execute_notebook(src, tmp_path / "run2.ipynb", parameters={"profile": "smoke"}, cwd=str(src.parent),
                        execution_timeout=300, progress_bar=False)
    for out in [tmp_path / "run0" / "theory" / f"{name}.ipynb", tmp_path / "run1" / "theory" / f"{name}.ipynb",
                tmp_path / "run2.ipynb"]:
        nb = json.loads(out.read_text())
        mimes = {k for c in nb["cells"] for o in c.get("outputs", []) for k in o.get("data", {})}
        assert WIDGET_MIME not in mimes, f"{out}: a widget was built in a headless run"
        assert any("show_controls" in "".join(c["source"]) for c in nb["cells"])


def test_runner_progress_time_left():
    """The runner's bar: time left from the last executed copy's cell times, the running cell
    counted up to its expected time; from a recorded chapter time, the clock."""
    from types import SimpleNamespace

    from kr_utils.book import Progress
    now = [0.0]
    cell = SimpleNamespace(source="train()")
    p = Progress("ch", 3, [10.0, 100.0, 10.0], None, clock=lambda: now[0])
    p.cell_started(0, cell); now[0] = 4.0
    assert p.position() == (4.0, 116.0)
    p.cell_done(0); p.cell_started(1, cell); now[0] = 54.0
    assert p.position() == (60.0, 60.0)
    now[0] = 300.0  # the long cell runs past its expected time: it counts as done, not more
    assert p.position() == (110.0, 10.0)
    p.close()
    q = Progress("ch", 3, None, 60.0, clock=lambda: now[0] - 300.0)
    now[0] = 320.0
    assert q.position() == (20.0, 40.0)
    q.close()
    r = Progress("ch", 3, None, None)
    r.cell_done(0)
    assert r.position() == (1.0, None)
    r.close()
