"""Run the notebooks with papermill, writing the executed copies where the book renders
them (``book/pipeline/`` and ``book/theory/``), then optionally build the book.

    python -m kr_utils.book --profile cpu --build

The pipeline runs first, so that theory chapter 7 can reuse the pipeline's diffusion model;
the book still shows the theory first (``_toc.yml``).

Every cell runs under the profile's ``cell_timeout_s``; a cell that fails or runs past it
stops the run with the chapter and the cell named. Widgets are never built here
(``KR_HEADLESS=1``, see :mod:`kr_utils.live`). Each notebook shows a progress bar in seconds,
weighted by the cell times of the last executed copy (papermill records them), or of the last
recorded run of the profile (``results/<profile>/metrics.json``), with the time left.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from .store import repo_root
from .config import ConfigError, get_config, resolve_dataset, resolve_profile
from .live import HEADLESS_ENV

# (group, source folder under notebooks/, notebooks in run order)
GROUPS = [
    ("pipeline", ".", ["01_teacher", "02_diffusion", "03_generation", "04_synthetic_set", "05_student",
                       "06_degradation", "07_ablation", "08_analysis", "09_evaluation", "10_fashion_mnist", "11_other_generators"]),
    ("theory", "theory", ["01_generative_vs_discriminative", "02_forward_process", "03_reverse_process_and_loss",
                          "04_toy_diffusion_2d", "05_guidance_on_the_toy", "06_per_step_autoencoders",
                          "07_reconstruction_and_inpainting", "08_phase_transitions", "09_autoencoders_and_gans"]),
]
NOTEBOOKS = [name for _, _, names in GROUPS for name in names]


INSTALL_RE = r'%pip install -q "kr_utils @ git\+[^"]*"'


def repository(root: Path | None = None) -> dict:
    """``_config.yml``'s ``repository`` block (url, branch, path_to_book): the one place that
    names where the book is published."""
    import yaml

    repo = yaml.safe_load(((root or repo_root()) / "_config.yml").read_text())["repository"]
    return {"url": repo["url"].rstrip("/"), "branch": repo.get("branch", "main")}


def install_line(root: Path | None = None) -> str:
    """The Colab install line of every notebook: the project from the book's repository, with
    version floors only, so Colab's own torch and torchvision stay."""
    repo = repository(root)
    return '%pip install -q "kr_utils @ git+{url}@{branch}"'.format(**repo)


def sync_install_cells(root: Path | None = None) -> list[Path]:
    """Rewrite the install line of every notebook (both twins) from ``_config.yml``; returns the
    files changed."""
    import re

    import nbformat

    root = root or repo_root()
    line, changed = install_line(root), []

    def swap(text):
        return re.sub(INSTALL_RE, lambda _: line, text)

    for path in sorted((root / "notebooks").glob("*.py")) + sorted((root / "notebooks" / "theory").glob("*.py")):
        text = path.read_text()
        if swap(text) != text:
            path.write_text(swap(text))
            changed.append(path)
        ipynb = path.with_suffix(".ipynb")
        nb = nbformat.read(ipynb, as_version=4)
        before = [c.source for c in nb.cells]
        for cell in nb.cells:
            cell.source = swap(cell.source)
        if [c.source for c in nb.cells] != before:
            nbformat.write(nb, ipynb)
            changed.append(ipynb)
    return changed


class NotebookFailed(SystemExit):
    """A chapter stopped: its error or timeout, with the chapter and the cell named."""


def expected_cell_seconds(executed: Path, n_cells: int, profile: str) -> list[float] | None:
    """Per-cell seconds of the last executed copy of this notebook at this profile (papermill's
    ``metadata.papermill.duration``), or None when there is none with the same cells."""
    try:
        nb = json.loads(Path(executed).read_text())
        if nb["metadata"].get("papermill", {}).get("parameters", {}).get("profile") != profile:
            return None
        cells = nb["cells"]
        durations = [float(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0) for c in cells]
        return durations if len(durations) == n_cells and sum(durations) > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recorded_chapter_seconds(profile: str) -> dict:
    """``{'pipeline/01_teacher': seconds, ...}`` of the last recorded run of ``profile``
    (:func:`kr_utils.pipeline.recorded_metrics`: the pipeline's ``compute_time_s``, what each
    chapter costs from scratch, else its ``wall_time_s``, which a run that reused cached results
    makes short; the theory's ``theory_wall_time_s``, keyed T1-T8), for estimates where no
    executed copy exists yet."""
    from .pipeline import recorded_metrics

    m = recorded_metrics(profile)
    out = {f"pipeline/{k}": float(v) for k, v in {**(m.get("wall_time_s") or {}), **(m.get("compute_time_s") or {})}.items()}
    theory_names = GROUPS[1][2]
    for key, seconds in (m.get("theory_wall_time_s") or {}).items():  # "T4" -> theory/04_...
        index = int(key[1:]) - 1 if key[1:].isdigit() else -1
        if 0 <= index < len(theory_names):
            out[f"theory/{theory_names[index]}"] = float(seconds)
    return out


def _recorded_scale(profile: str) -> tuple[float, str]:
    """:func:`kr_utils.pipeline.recorded_scale` on the device the chapters will pick."""
    from .pipeline import recorded_scale
    from .runtime import device

    return recorded_scale(profile, device())


def _engine():
    """A papermill engine that drives a tqdm bar in expected seconds (one per notebook)."""
    from papermill.engines import NBClientEngine, papermill_engines

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, kr_progress=None, **kwargs):
            if kr_progress is not None:
                start, complete = nb_man.cell_start, nb_man.cell_complete

                def cell_start(cell, cell_index=None, **kw):
                    kr_progress.cell_started(cell_index, cell)
                    return start(cell, cell_index, **kw)

                def cell_complete(cell, cell_index=None, **kw):
                    kr_progress.cell_done(cell_index)
                    return complete(cell, cell_index, **kw)

                nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("kr_progress", ProgressEngine)
    return "kr_progress"


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    """A tqdm bar per notebook, in expected seconds, with the time left.

    With the cell times of the last executed copy (``weights``), the bar stands at the expected
    time of the cells done plus the time spent in the running cell (up to its expected time),
    and the time left is the expected time of the cells still to run plus what remains of the
    running one. With only the chapter's recorded time (``total_hint``) the bar follows the clock
    up to that time. With neither, it counts cells. A ticker redraws it during long cells (every
    5 s on a terminal, every minute in a log)."""

    def __init__(self, label: str, n_cells: int, weights: list[float] | None, total_hint: float | None,
                 clock=time.perf_counter):
        from tqdm.auto import tqdm

        self.weights, self.total_hint, self.clock = weights, total_hint, clock
        self.expected = sum(weights) if weights else total_hint
        self.current, self.cell_text, self.done, self.finished = None, "", set(), False
        self.t0 = self.cell_t0 = clock()
        self.tty = sys.stdout.isatty()  # in a log (CI, nohup) a line now and then, not a redraw per cell
        every = 0.5 if self.tty else 60
        if self.expected:
            self.bar = tqdm(total=round(self.expected, 1), desc=label, file=sys.stdout, mininterval=every,
                            bar_format="{desc}: {percentage:3.0f}%|{bar:20}| [{elapsed} elapsed{postfix}]")
        else:
            self.bar = tqdm(total=n_cells, desc=label, unit="cell", file=sys.stdout, mininterval=every)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def position(self) -> tuple[float, float | None]:
        """``(expected seconds done, expected seconds left)`` now (left None without a record)."""
        now = self.clock()
        if self.weights:
            done = sum(self.weights[i] for i in self.done)
            running = 0.0
            if self.current is not None and self.current not in self.done:
                running = min(now - self.cell_t0, self.weights[self.current])
            return done + running, max(self.expected - done - running, 0.0)
        if self.total_hint:
            elapsed = now - self.t0
            return min(elapsed, self.total_hint), max(self.total_hint - elapsed, 0.0)
        return float(len(self.done)), None

    def _draw(self, refresh: bool = True):
        n, left = self.position()
        self.bar.n = round(n, 1) if self.expected else int(n)
        if left is None or self.finished:
            more = ""
        else:
            more = f", about {_clock(left)} left" if left > 0 else ", past the recorded time"
        self.bar.set_postfix_str(f"{more}, cell {self.current}: {self.cell_text}".lstrip(", "), refresh=False)
        if refresh:
            self.bar.refresh()

    def _tick(self):
        while not self._stop.wait(5.0 if self.tty else 60.0):
            self._draw()

    def cell_started(self, index, cell):
        self.current, self.cell_t0 = index, self.clock()
        self.cell_text = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")), "")[:40]
        self._draw(refresh=self.tty)

    def cell_done(self, index):
        self.done.add(index)
        self._draw(refresh=self.tty)

    def close(self):
        self._stop.set()
        self.finished = True
        self._draw()
        self.bar.close()


def _describe_failure(err, label: str, output: Path, timeout: int, running=None) -> str:
    """'<chapter>: cell N (first line) <what happened>' from papermill's or nbclient's error;
    ``running`` is ``(index, first line)`` of the cell that was running, for errors that name none."""
    from nbclient.exceptions import CellTimeoutError

    index = getattr(err, "cell_index", None)
    source = getattr(err, "source", "") or ""
    if index is None and running is not None:  # a timeout names no cell: the one that was running
        index, source = running
    if isinstance(err, CellTimeoutError) or "timed out" in str(err):
        what = f"ran past the cell timeout of {timeout} s (cell_timeout_s of the profile)"
    else:
        what = f"raised {getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', str(err))[:300]}"
    cell = f"cell {index}" if index is not None else "a cell"
    first = next((ln for ln in source.splitlines() if ln.strip()), "")
    return f"{label}: {cell}{f' ({first[:60]!r})' if first else ''} {what}; executed copy: {output}"


# with another dataset than MNIST, the pipeline chapters that run on it (the theory is MNIST's,
# and chapter 10 is itself the book's Fashion-MNIST part)
DATASET_CHAPTERS = GROUPS[0][2][:9]


def run_notebooks(profile: str, book_dir: Path, only=None, timeout: int | None = None,
                  dataset: str = "mnist") -> dict:
    """Execute every notebook (or those named in ``only``) into ``book_dir/<group>/``; with
    another ``dataset``, pipeline chapters 1-9 only, each given the ``dataset`` parameter."""
    import nbformat
    import papermill as pm

    try:
        profile = resolve_profile(profile)  # "auto" becomes gpu or cpu here
        dataset = resolve_dataset(dataset)
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    unknown = set(only or ()) - set(NOTEBOOKS)
    if unknown:
        raise SystemExit(f"unknown notebooks {sorted(unknown)}; expected names from {NOTEBOOKS}")
    timeout = timeout or get_config(profile).cell_timeout_s
    os.environ[HEADLESS_ENV] = "1"  # inherited by every kernel: no widget is ever built here
    engine = _engine()
    recorded = recorded_chapter_seconds(profile)
    scale, why = _recorded_scale(profile)
    if scale != 1.0 or why:
        print(f"Note: {why}.", flush=True)
    recorded = {k: scale * v for k, v in recorded.items()}
    todo = [(g, f, n) for g, f, names in GROUPS for n in names if not only or n in only]
    if dataset != "mnist":
        todo = [(g, f, n) for g, f, n in todo if n in DATASET_CHAPTERS]
    times, t_book = {}, time.perf_counter()
    for i, (group, folder, name) in enumerate(todo, 1):
        src = repo_root() / "notebooks" / folder / f"{name}.ipynb"
        out_dir = book_dir / group
        out_dir.mkdir(parents=True, exist_ok=True)
        output, label = out_dir / f"{name}.ipynb", f"{group}/{name}"
        n_cells = len(nbformat.read(src, as_version=4).cells) + 1  # + papermill's injected parameters
        left = sum(recorded.get(f"{g}/{n}", 0.0) for g, _, n in todo[i - 1:])
        which = f"{profile}{'' if dataset == 'mnist' else ', ' + dataset}"
        print(f"== [{i}/{len(todo)}] {label} ({which}); book {(time.perf_counter() - t_book) / 60:.1f} min "
              f"elapsed" + (f", about {left / 60:.0f} min left from scratch by the last recorded run" if left else ""),
              flush=True)
        progress = Progress(label, n_cells, expected_cell_seconds(output, n_cells, profile), recorded.get(label))
        t0 = time.perf_counter()
        try:
            params = {"profile": profile, **({"dataset": dataset} if dataset != "mnist" else {})}
            pm.execute_notebook(src, output, parameters=params, cwd=str(src.parent),
                                engine_name=engine, kr_progress=progress, execution_timeout=timeout,
                                progress_bar=False, log_output=False)
        except Exception as err:  # papermill's execution error or nbclient's timeout
            running = (progress.current, progress.cell_text) if progress.current is not None else None
            raise NotebookFailed(_describe_failure(err, label, output, timeout, running)) from err
        finally:
            progress.close()
        times[label] = time.perf_counter() - t0
        print(f"   {times[label]:.0f} s", flush=True)
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu", help="smoke, cpu (default), gpu or auto (gpu on CUDA, else cpu)")
    p.add_argument("--dataset", default="mnist",
                   help="mnist (default: the book) or fashion-mnist (pipeline chapters 1-9 on it, into "
                        "_build/<dataset>/ unless --out says otherwise; the book's own Fashion-MNIST part is chapter 10)")
    p.add_argument("--only", nargs="*", help="run only these notebooks (names without .ipynb)")
    p.add_argument("--out", default=None, help="book folder receiving pipeline/ and theory/ (default: book)")
    p.add_argument("--timeout", type=int, default=None, help="seconds a cell may run (default: the profile's)")
    p.add_argument("--build", action="store_true", help="then run jupyter-book build -n -W --keep-going")
    p.add_argument("--sync-install", action="store_true",
                   help="rewrite every notebook's Colab install line from _config.yml's repository, and stop")
    args = p.parse_args(argv)
    root = repo_root()
    if args.sync_install:
        changed = sync_install_cells(root)
        print(f"{install_line(root)}: {len(changed)} notebook files rewritten")
        return
    other = args.dataset != "mnist"
    default_out = root / "_build" / args.dataset if other else root / "book"
    times = run_notebooks(args.profile, Path(args.out) if args.out else default_out, args.only, args.timeout,
                          dataset=args.dataset)
    print("notebook wall times (s):", {k: round(v) for k, v in times.items()})
    if other:
        print(f"executed chapters on {args.dataset}: {Path(args.out) if args.out else default_out}; the book is "
              f"built from the MNIST run (its {args.dataset} part is chapter 10), so no book is built here")
    elif args.build:
        cmd = ["jupyter-book", "build", str(root), "-n", "-W", "--keep-going"]
        sys.exit(subprocess.call(cmd, cwd=root))


if __name__ == "__main__":
    main()
