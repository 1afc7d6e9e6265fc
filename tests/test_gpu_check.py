"""The prepared GPU check (``benchmarks/gpu_check.py``, ``make gpu-check``): its time boxes, its
record written step by step, its chapter lanes; and, after ``tests/run_all.sh`` has run it at
smoke on the CPU (``KR_GPU_CHECK_OUT``), that every output it promises is there."""
import importlib.util
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_step_past_its_time_box_is_stopped_with_its_children(tmp_path):
    gc = _check()
    log = tmp_path / "step.log"
    t0 = time.monotonic()
    # the child starts a grandchild that would outlive it: the whole process group goes
    pid_file = tmp_path / "grandchild.pid"
    cmd = [sys.executable, "-c", "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
           "'import time; time.sleep(60)']); open(sys.argv[1], 'w').write(str(p.pid)); print('started', flush=True); "
           "time.sleep(60)", str(pid_file)]
    rc, cut = gc.run_commands([cmd], log, timeout=2, env=dict(os.environ))
    assert cut and rc == 124 and time.monotonic() - t0 < 20
    assert "started" in log.read_text() and "time box of 2 s reached" in log.read_text()
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # killed with its group (a zombie until init reaps it counts as gone)
        try:
            state = Path(f"/proc/{grandchild}/stat").read_text().split()[2]
        except OSError:
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the grandchild {grandchild} outlived the time box")


def test_two_commands_run_at_once_and_the_first_failure_is_the_steps(tmp_path):
    gc = _check()
    ok = [sys.executable, "-c", "import time; time.sleep(1.5)"]
    bad = [sys.executable, "-c", "import sys, time; time.sleep(1.5); sys.exit(3)"]
    t0 = time.monotonic()
    rc, cut = gc.run_commands([ok, bad], tmp_path / "l.log", timeout=30, env=dict(os.environ))
    assert (rc, cut) == (3, False)
    assert time.monotonic() - t0 < 2.9, "the two commands ran one after the other"


def test_every_step_is_recorded_as_it_ends_and_a_failure_does_not_stop_the_next(tmp_path, monkeypatch):
    gc = _check()
    seen = []

    def commands(step, args, out, book_out):
        if seen:  # the step before is already in the record when this one starts
            assert json.loads((out / "gpu_check.json").read_text())["steps"].keys() == set(seen)
        seen.append(step)
        code = "import sys; print('boom'); sys.exit(1)" if step == "chapters" else "print('fine')"
        return [[sys.executable, "-c", code]]

    monkeypatch.setattr(gc, "step_commands", commands)
    summary = gc.main(["--profile", "smoke", "--out", str(tmp_path / "o"), "--book-out", str(tmp_path / "b")])
    assert seen == list(gc.STEPS)
    record = json.loads((tmp_path / "o" / "gpu_check.json").read_text())
    assert record == summary and record["passed"] is False
    assert [record["steps"][s]["passed"] for s in gc.STEPS] == [True, False, True]
    assert "boom" in record["steps"]["chapters"]["log_tail"]
    assert (tmp_path / "o" / "gpu_check_chapters.log").exists()
    assert record["commit"] and record["steps"]["replication"]["time_box_s"] == gc.TIME_BOX_S["smoke"]["replication"]


def test_bad_arguments_are_refused_before_any_step(tmp_path):
    gc = _check()
    with pytest.raises(SystemExit, match="time-box"):
        gc.main(["--profile", "smoke", "--out", str(tmp_path), "--time-box", "chapters=soon"])
    with pytest.raises(SystemExit, match="--out is required"):
        gc.main(["--profile", "smoke"])
    with pytest.raises(SystemExit, match="lanes"):
        gc.main(["--profile", "smoke", "--out", str(tmp_path), "--lanes", "3"])
    assert not (tmp_path / "gpu_check.json").exists()


def test_the_lanes_hold_every_chapter_once_and_the_models_readers_after_the_pipeline():
    gc = _check()
    from kr_utils.book import GROUPS, NOTEBOOKS
    assert gc.chapter_lanes(1) == [NOTEBOOKS]
    first, second = gc.chapter_lanes(2)
    assert sorted(first + second) == sorted(NOTEBOOKS)
    assert first[:len(GROUPS[0][2])] == GROUPS[0][2]  # the pipeline in its order, then the readers of its models
    assert set(first[len(GROUPS[0][2]):]) == set(gc.READS_PIPELINE)
    # a theory chapter that loads the teacher or the U-Net must wait for the pipeline
    for name in GROUPS[1][2]:
        text = (ROOT / "notebooks" / "theory" / f"{name}.py").read_text().replace("pipeline.open_chapter(", "")
        if "pipeline." in text:  # beyond the set-up call, which every chapter makes
            assert name in gc.READS_PIPELINE, f"{name} reads the pipeline's models but runs beside it"


@pytest.mark.skipif(not os.environ.get("KR_GPU_CHECK_OUT"), reason="run by tests/run_all.sh after the smoke GPU check")
def test_outputs_of_the_smoke_gpu_check_are_all_there():
    out = Path(os.environ["KR_GPU_CHECK_OUT"])
    record = json.loads((out / "gpu_check.json").read_text())
    assert record["passed"] and list(record["steps"]) == ["cuda_tests", "chapters", "replication"]
    for step in record["steps"].values():
        assert step["seconds"] > 0 and not step["cut_by_time_box"] and (out / step["log"]).exists()
    suite = ET.parse(out / "cuda_tests.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) >= 10  # collected: each skipped on a CPU, each run on a GPU
    rep = json.loads((out / "replication.json").read_text())
    assert set(rep["stages"]) == {"teacher", "diffusion", "synthetic_set", "student"}
    assert rep["environment"]["date"] and "commit" in rep["environment"]
    executed = {p.stem for p in Path(record["book_out"]).glob("*/*.ipynb")}
    from kr_utils.book import NOTEBOOKS
    assert executed == set(NOTEBOOKS)
    assert len(list(out.iterdir())) <= 8, "a device run brings back at most 8 files"
