"""The prepared GPU check: one command for a GPU box that has PyTorch, every step time-boxed,
each step's result written as it finishes, so that a run cut short keeps what it measured.

What it achieves: on one H100 it runs, within 6 minutes in all (so that a second try fits in a
15-minute loan), every CUDA code path against its CPU reference, every chapter of the book at
the smoke profile, and one replication at the gpu profile (teacher, U-Net, 60,000 labelled
digits, student). At ``--profile smoke`` on a CPU (``make test`` runs it so) the CUDA tests skip
and everything else runs at the smoke profile.

    make gpu-check                                        # gpu, into results/gpu/
    python benchmarks/gpu_check.py --profile gpu --out $OUT
    python benchmarks/gpu_check.py --profile smoke --out /tmp/check --book-out /tmp/book

Steps, in order (``--steps`` picks some):

1. ``cuda_tests``: ``pytest -m cuda tests/test_cuda.py`` (junit XML in ``cuda_tests.xml``);
2. ``chapters``: every notebook at smoke through the book runner (:mod:`kr_utils.book`), in two
   lanes at once on a GPU (the pipeline chapters, then T7 and T9, which read their models; and
   the other theory chapters), executed notebooks into ``--book-out``;
3. ``replication``: ``benchmarks/replication.py --profile <profile> --skip-levers`` into
   ``replication.json`` (device, date, commit inside).

``gpu_check.json`` (with ``gpu_check_<step>.log`` beside it) holds, per step: passed or not, the exit code, seconds, its time box, whether
the box cut it short, the peak GPU memory seen by ``nvidia-smi`` (or the host's peak resident
memory of the step's processes on a CPU), the log file and the last lines of a failure. A
folder ``.whl/`` of carried wheels (``../shared/gpu/wheels.sh``) is installed first into a
private folder where papermill is missing. The output folder holds at most 8 files, so that a
device run's ``$OUT`` brings all of them back.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kr_utils.book import GROUPS  # noqa: E402
from kr_utils.runtime import code_commit  # noqa: E402
from kr_utils.store import atomic_write_text  # noqa: E402

STEPS = ("cuda_tests", "chapters", "replication")
# seconds per step on one H100: 60 + 150 + 150 = 6 minutes; a CPU at smoke gets longer boxes
TIME_BOX_S = {"gpu": {"cuda_tests": 60, "chapters": 150, "replication": 150},
              "smoke": {"cuda_tests": 300, "chapters": 3000, "replication": 600}}
# theory chapters that read the pipeline's models (the teacher, the U-Net): after the pipeline
READS_PIPELINE = ("07_reconstruction_and_inpainting", "09_autoencoders_and_gans")


def chapter_lanes(lanes: int) -> list[list[str]]:
    """The notebooks in ``lanes`` lists that may run at once: one lane is the book's order; two
    put the pipeline chapters and the theory chapters that read their models in one, and the
    other theory chapters in the other."""
    pipeline = list(GROUPS[0][2])
    theory = list(GROUPS[1][2])
    if lanes == 1:
        return [pipeline + theory]
    return [pipeline + [t for t in theory if t in READS_PIPELINE], [t for t in theory if t not in READS_PIPELINE]]


class GpuMemory:
    """The largest GPU memory in use (MiB, summed over the GPUs) that ``nvidia-smi`` reports
    while the block runs, sampled every half second; None without ``nvidia-smi``."""

    def __init__(self):
        self.peak_mib, self._stop = None, threading.Event()
        self._smi = shutil.which("nvidia-smi")

    def _sample(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run([self._smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                used = sum(float(v) for v in out.split())
                self.peak_mib = max(self.peak_mib or 0.0, used)
            except (OSError, ValueError, subprocess.SubprocessError):
                return
            self._stop.wait(0.5)

    def __enter__(self):
        if self._smi:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._smi:
            self._thread.join(timeout=6)


def run_commands(commands: list[list[str]], log: Path, timeout: float, env: dict) -> tuple[int, bool]:
    """Run ``commands`` at once, each in its own process group, all output into ``log``; kill
    every one left when ``timeout`` seconds have passed. Returns (the first non-zero exit code
    or 0, whether the time box cut them short)."""
    deadline = time.monotonic() + timeout
    with open(log, "w") as fh:
        procs = [subprocess.Popen(c, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)
                 for c in commands]
        cut, codes = False, []
        for p in procs:
            try:
                codes.append(p.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                cut = True
        if cut:
            for p in procs:
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, 9)
                    except ProcessLookupError:
                        pass
                    p.wait()
            fh.write(f"\n[gpu_check] time box of {timeout:.0f} s reached: stopped\n")
    return (next((c for c in codes if c), 0) if not cut else 124), cut


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def step_commands(step: str, args, out: Path, book_out: Path) -> list[list[str]]:
    py = sys.executable
    if step == "cuda_tests":
        return [[py, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py",
                 f"--junitxml={out / 'cuda_tests.xml'}"]]
    if step == "chapters":
        return [[py, "-m", "kr_utils.book", "--profile", "smoke", "--out", str(book_out), "--only", *lane]
                for lane in chapter_lanes(args.lanes)]
    if step == "replication":
        extra = ["--profile-steps", "0"] if args.profile == "smoke" else []
        return [[py, str(ROOT / "benchmarks" / "replication.py"), "--profile", args.profile, "--skip-levers",
                 "--out", str(out / "replication.json"), *extra]]
    raise ValueError(step)


def carried_wheels(env: dict) -> str | None:
    """Install ``.whl/*.whl`` into a private folder (put on ``PYTHONPATH``) where papermill is
    missing; returns what was done, or None."""
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    have = subprocess.run([sys.executable, "-c", "import papermill, ipykernel"], env=env, capture_output=True).returncode == 0
    if have or not wheels:
        return None
    site = Path(tempfile.gettempdir()) / "kr_gpu_check_site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    return f"installed {len(wheels)} carried wheels into {site}"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="gpu", choices=sorted(TIME_BOX_S),
                   help="gpu (a GPU box) or smoke (the same steps on a CPU, as make test runs them)")
    p.add_argument("--out", default=None, help="output folder (default results/gpu; required at smoke)")
    p.add_argument("--book-out", default=None, help="folder for the executed chapters (default: a temporary one)")
    p.add_argument("--steps", nargs="*", default=list(STEPS), choices=STEPS)
    p.add_argument("--lanes", type=int, default=None, help="chapter lanes at once (default 2 on a GPU, else 1)")
    p.add_argument("--time-box", nargs="*", default=[], metavar="STEP=SECONDS", help="override a step's time box")
    args = p.parse_args(argv)
    boxes = dict(TIME_BOX_S[args.profile])
    for item in args.time_box:
        step, _, secs = item.partition("=")
        if step not in boxes or not secs.replace(".", "", 1).isdigit() or float(secs) <= 0:
            raise SystemExit(f"--time-box {item!r}: expected STEP=SECONDS with STEP one of {list(boxes)}")
        boxes[step] = float(secs)
    if args.lanes is None:
        args.lanes = 2 if shutil.which("nvidia-smi") else 1
    if args.lanes not in (1, 2):
        raise SystemExit(f"--lanes must be 1 or 2, got {args.lanes}")
    if args.out is None and args.profile != "gpu":
        raise SystemExit("--out is required at --profile smoke (results/ holds recorded runs only)")
    out = Path(args.out) if args.out else ROOT / "results" / "gpu"
    out.mkdir(parents=True, exist_ok=True)
    book_out = Path(args.book_out) if args.book_out else Path(tempfile.mkdtemp(prefix="kr_gpu_check_book_"))
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg", KR_HEADLESS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    env.setdefault("KR_ARTIFACTS", str(Path(tempfile.gettempdir()) / "kr_gpu_check_artifacts"))
    summary = {"profile": args.profile, "commit": code_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
               "host": os.uname().nodename, "artifacts": env["KR_ARTIFACTS"], "book_out": str(book_out),
               "wheels": carried_wheels(env), "steps": {}}
    summary_path = out / "gpu_check.json"

    def write():
        atomic_write_text(summary_path, json.dumps(summary, indent=2))

    write()
    t_all = time.perf_counter()
    for step in args.steps:
        log = out / f"gpu_check_{step}.log"
        print(f"== {step} (time box {boxes[step]:.0f} s) -> {log}", flush=True)
        t0 = time.perf_counter()
        with GpuMemory() as mem:
            rc, cut = run_commands(step_commands(step, args, out, book_out), log, boxes[step], env)
        entry = {"passed": rc == 0, "returncode": rc, "seconds": round(time.perf_counter() - t0, 1),
                 "time_box_s": boxes[step], "cut_by_time_box": cut, "log": log.name,
                 "peak_gpu_memory_mib": mem.peak_mib,
                 # ru_maxrss: the largest resident set of any finished child so far (KiB on Linux)
                 "peak_child_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20, 2)}
        if rc:
            entry["log_tail"] = tail(log)
            print(f"   last lines of {log}:\n{tail(log, 60)}", flush=True)
        summary["steps"][step] = entry
        summary["seconds"] = round(time.perf_counter() - t_all, 1)
        write()
        print(f"   {'passed' if rc == 0 else 'FAILED'} in {entry['seconds']} s", flush=True)
    summary["passed"] = all(s["passed"] for s in summary["steps"].values())
    write()
    print(f"gpu check {'passed' if summary['passed'] else 'FAILED'} in {summary['seconds']} s -> {summary_path}")
    return summary


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
