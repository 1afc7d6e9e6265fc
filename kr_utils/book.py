"""Run the pipeline notebooks in order with papermill, writing the executed copies where
the book renders them (``book/pipeline/``), then optionally build the book.

    python -m kr_utils.book --profile cpu --build
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .artifacts import repo_root
from .config import PROFILES

NOTEBOOKS = ["01_teacher", "02_diffusion", "03_generation", "04_synthetic_set", "05_student", "06_analysis"]


def run_notebooks(profile: str, out_dir: Path, only=None, timeout: int = 4 * 3600) -> dict:
    import papermill as pm

    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    src = repo_root() / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    times = {}
    for name in NOTEBOOKS:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        print(f"== {name} ({profile})", flush=True)
        pm.execute_notebook(src / f"{name}.ipynb", out_dir / f"{name}.ipynb", parameters={"profile": profile},
                            cwd=str(src), execution_timeout=timeout, progress_bar=False, log_output=False)
        times[name] = time.perf_counter() - t0
        print(f"   {times[name]:.0f} s", flush=True)
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu", help="smoke, cpu (default) or gpu")
    p.add_argument("--only", nargs="*", help="run only these notebooks (names without .ipynb)")
    p.add_argument("--out", default=None, help="folder for the executed notebooks (default: book/pipeline)")
    p.add_argument("--build", action="store_true", help="then run jupyter-book build -n -W --keep-going")
    args = p.parse_args(argv)
    root = repo_root()
    times = run_notebooks(args.profile, Path(args.out) if args.out else root / "book" / "pipeline", args.only)
    print("notebook wall times (s):", {k: round(v) for k, v in times.items()})
    if args.build:
        cmd = ["jupyter-book", "build", str(root), "-n", "-W", "--keep-going"]
        sys.exit(subprocess.call(cmd, cwd=root))


if __name__ == "__main__":
    main()
