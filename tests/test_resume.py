"""Killed and resumed: the book's runner is killed (SIGKILL, with its kernel) in the middle of
chapter 1's teacher study at the smoke profile, one finished run's cache file is cut short (as
a torn write or a half-synced copy would leave it), and the chapter is run again; it completes,
and its metrics equal those of an uninterrupted run with the same seeds."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _runner(artifacts: Path, out: Path, **kw):
    env = {**os.environ, "KR_ARTIFACTS": str(artifacts), "KR_PROFILE": "smoke", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "kr_utils.book", "--profile", "smoke", "--only", "01_teacher", "--out", str(out)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, **kw)


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if "time" not in k and k != "inference_ms_per_image"}
    return obj


def test_killed_mid_chapter_then_resumed_gives_the_same_metrics(tmp_path, mnist_dir):
    os.environ["KR_DATA_DIR"] = str(mnist_dir)
    interrupted = _runner(tmp_path / "art", tmp_path / "book")
    teachers = tmp_path / "art" / "smoke" / "teachers"
    deadline = time.time() + 240
    while not [p for p in teachers.glob("*_seed*.pt") if ".partial" not in p.name]:  # one study run done
        assert interrupted.poll() is None, "the chapter finished before it could be killed"
        assert time.time() < deadline, "no teacher run finished in 240 s"
        time.sleep(0.05)
    os.killpg(interrupted.pid, signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "art" / "smoke" / "metrics.json").exists()   # killed before the chapter's end
    done = sorted(p for p in teachers.glob("*.pt"))
    torn = done[0]  # what a kill during a non-atomic write, or a half-synced Drive copy, leaves
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 3])
    assert _runner(tmp_path / "art", tmp_path / "book").wait(timeout=300) == 0
    assert _runner(tmp_path / "ref", tmp_path / "book_ref").wait(timeout=300) == 0  # uninterrupted
    resumed = json.loads((tmp_path / "art" / "smoke" / "metrics.json").read_text())["teacher"]
    ref = json.loads((tmp_path / "ref" / "smoke" / "metrics.json").read_text())["teacher"]
    assert _without_times(resumed) == _without_times(ref), [p.name for p in done]
