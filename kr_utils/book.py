"""Run the notebooks with papermill, writing the executed copies where the book renders
them (``book/pipeline/`` and ``book/theory/``), then optionally build the book.

    python -m kr_utils.book --profile cpu --build

The pipeline runs first, so that theory chapter 7 can reuse the pipeline's diffusion model;
the book still shows the theory first (``_toc.yml``).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from .artifacts import repo_root
from .config import PROFILES

# (group, source folder under notebooks/, notebooks in run order)
GROUPS = [
    ("pipeline", ".", ["01_teacher", "02_diffusion", "03_generation", "04_synthetic_set", "05_student",
                       "06_degradation", "07_ablation", "08_analysis"]),
    ("theory", "theory", ["01_generative_vs_discriminative", "02_forward_process", "03_reverse_process_and_loss",
                          "04_toy_diffusion_2d", "05_guidance_on_the_toy", "06_per_step_autoencoders",
                          "07_reconstruction_and_inpainting", "08_phase_transitions"]),
]
NOTEBOOKS = [name for _, _, names in GROUPS for name in names]


def run_notebooks(profile: str, book_dir: Path, only=None, timeout: int = 4 * 3600) -> dict:
    """Execute every notebook (or those named in ``only``) into ``book_dir/<group>/``."""
    import papermill as pm

    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    unknown = set(only or ()) - set(NOTEBOOKS)
    if unknown:
        raise SystemExit(f"unknown notebooks {sorted(unknown)}; expected names from {NOTEBOOKS}")
    times = {}
    for group, folder, names in GROUPS:
        src = repo_root() / "notebooks" / folder
        out_dir = book_dir / group
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            print(f"== {group}/{name} ({profile})", flush=True)
            pm.execute_notebook(src / f"{name}.ipynb", out_dir / f"{name}.ipynb", parameters={"profile": profile},
                                cwd=str(src), execution_timeout=timeout, progress_bar=False, log_output=False)
            times[f"{group}/{name}"] = time.perf_counter() - t0
            print(f"   {times[f'{group}/{name}']:.0f} s", flush=True)
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu", help="smoke, cpu (default) or gpu")
    p.add_argument("--only", nargs="*", help="run only these notebooks (names without .ipynb)")
    p.add_argument("--out", default=None, help="book folder receiving pipeline/ and theory/ (default: book)")
    p.add_argument("--build", action="store_true", help="then run jupyter-book build -n -W --keep-going")
    args = p.parse_args(argv)
    root = repo_root()
    times = run_notebooks(args.profile, Path(args.out) if args.out else root / "book", args.only)
    print("notebook wall times (s):", {k: round(v) for k, v in times.items()})
    if args.build:
        cmd = ["jupyter-book", "build", str(root), "-n", "-W", "--keep-going"]
        sys.exit(subprocess.call(cmd, cwd=root))


if __name__ == "__main__":
    main()
