"""Just above the run environment (:mod:`kr_utils.runtime`, whose ``parallel_runs`` lever and
:func:`kr_utils.runtime.cores` it follows): independent runs side by side on a CPU's cores.

One classifier training run on a 2-core CPU keeps the cores only partly busy: its network is
small and its images are 28x28, so its two torch threads wait on each other. Two runs with one
thread each, in two processes, make more training steps per second in all than one run with
two threads (``benchmarks/parallel_runs.py``, ``results/cpu/parallel_runs_benchmark.json``).

:func:`run_in_waves` runs a list of independent calls side by side, each with the threads
:func:`threads_per_run` gives it (on 2 cores and 2 torch threads, one each), in waves of as many
calls as the cores hold (a last, smaller wave joins the one before); a wave of one call runs in
this process. Results come back as each wave ends, in the order of the calls.

The workers are spawned (never forked: a fork of a process whose OpenMP threads have run can
deadlock) without the caller's main module (they run functions of ``kr_utils`` only, so a script
without an ``if __name__ == "__main__"`` guard is not run again in them), kept between calls, and leave when this
process ends or is killed (each watches its
parent). A worker that dies (killed for memory) raises ``BrokenProcessPool`` here instead of
hanging; an interrupt here stops the workers at once, and the next call starts new ones. A
worker's printed lines are kept and printed here when its call returns.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Callable, Iterator

from . import runtime
from .live import progress

WORKER_ENV = "KR_WORKER"  # set in a worker process: its progress bars stay off (kr_utils.live.progress)
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


def _watch_parent(parent: int) -> None:
    """In a worker: leave when the parent is gone (a killed kernel leaves no run behind), and
    leave interrupts to the parent (a Ctrl-C reaches the whole process group; the parent then
    stops its workers)."""
    os.environ[WORKER_ENV] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _context() -> dict:
    """What a worker must share with this process at each call: the ``KR_*`` environment (a
    precision, the levers, the data folder, which may have changed since the worker started) and
    the levers switched by :func:`kr_utils.runtime.use_levers`."""
    return {"env": {k: v for k, v in os.environ.items() if k.startswith("KR_")},
            "levers": runtime.switched_levers()}


def _call(threads: int, context: dict, fn: Callable, args: tuple, kwargs: dict):
    """In a worker: ``fn(*args, **kwargs)`` with ``threads`` torch threads, in this process'
    :func:`_context`; returns ``(result, printed text)``."""
    import torch

    for k in [k for k in os.environ if k.startswith("KR_")]:
        del os.environ[k]
    os.environ.update(context["env"])
    os.environ[WORKER_ENV] = "1"
    torch.set_num_threads(threads)
    out = io.StringIO()
    with runtime.use_levers(**context["levers"]), contextlib.redirect_stdout(out):
        result = fn(*args, **kwargs)
    return result, out.getvalue()


@contextlib.contextmanager
def _main_hidden():
    """While a worker is spawned: the main module shows no file or spec, so that the worker does
    not import it again (``multiprocessing``'s spawn re-runs a script's top level otherwise)."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _workers(n: int) -> ProcessPoolExecutor:
    """The pool of at least ``n`` workers (a larger wave than the pool holds starts a new one)."""
    global _pool, _pool_size
    if _pool is None or _pool_size < n:
        stop()
        _pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_watch_parent, initargs=(os.getpid(),))
        _pool_size = n
    return _pool


def stop() -> None:
    """Stop the worker processes now (running calls are killed, not awaited)."""
    global _pool, _pool_size
    pool, _pool, _pool_size = _pool, None, 0
    if pool is None:
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def waves(n_calls: int, slots: int) -> list[list[int]]:
    """The calls of :func:`run_in_waves` grouped into waves of ``slots`` calls, a last wave of
    fewer joining the one before (three runs side by side on two cores made more steps per
    second in all than two, then one alone): ``waves(3, 2) == [[0, 1, 2]]``,
    ``waves(5, 2) == [[0, 1], [2, 3, 4]]``."""
    size = max(1, slots)
    out = [list(range(i, min(i + size, n_calls))) for i in range(0, n_calls, size)]
    if len(out) > 1 and len(out[-1]) < size:
        out[-2].extend(out.pop())
    return out


def threads_per_run(n_runs: int, threads: int | None = None, n_cores: int | None = None) -> int:
    """The torch threads of each of ``n_runs`` runs side by side: this process' threads shared
    among as many runs as there are cores. A run's float rounding depends on its threads, so a
    caller derives this from all its runs (cached ones too), never from those left to train: a
    run retrained after an interruption then has the threads, and the numbers, it first had."""
    import torch

    threads = torch.get_num_threads() if threads is None else threads
    n_cores = runtime.cores() if n_cores is None else n_cores
    return max(1, threads // max(1, min(n_cores, n_runs)))


def run_in_waves(fn: Callable, calls: list[tuple[tuple, dict]], *, threads_each: int,
                 n_cores: int | None = None) -> Iterator[tuple[int, object, float, int]]:
    """``fn(*args, **kwargs)`` for each ``(args, kwargs)`` of ``calls``, each with
    ``threads_each`` torch threads, in waves of as many as the cores hold (:func:`waves`); a
    wave of one call runs in this process, the others in worker processes (see the module's
    docstring). Yields ``(index, result, seconds, k)`` as each wave ends, where ``seconds`` is
    the wave's wall time shared among its ``k`` calls (what each call cost the machine). ``fn``
    and its arguments must pickle (a module-level function)."""
    import torch

    n_cores = runtime.cores() if n_cores is None else n_cores
    planned = waves(len(calls), n_cores // max(1, threads_each))
    for wave in planned:
        t0 = time.perf_counter()
        if len(wave) == 1:
            args, kwargs = calls[wave[0]]
            before = torch.get_num_threads()
            torch.set_num_threads(threads_each)
            try:
                result = fn(*args, **kwargs)
            finally:
                torch.set_num_threads(before)
            yield wave[0], result, time.perf_counter() - t0, 1
            continue
        pool = _workers(max(len(w) for w in planned))
        try:
            with _main_hidden():  # a submit may spawn a worker
                futures = [pool.submit(_call, threads_each, _context(), fn, *calls[i]) for i in wave]
            done, pending = set(), futures
            # the runs' own bars stay off in the workers: this one shows how many have finished, and the time
            with progress(total=len(wave), desc=f"{len(wave)} runs side by side", unit="run", leave=False) as bar:
                while pending and not any(f.exception() is not None for f in done):
                    # a short timeout: an interrupt (a person's Ctrl-C, a stopped cell) is seen within a second
                    finished, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
                    done |= finished
                    bar.update(len(finished))
            failed = [f for f in done if f.exception() is not None]
            if failed:
                stop()  # the wave's other calls are of no use without this one
                raise failed[0].exception()
            outcomes = [f.result() for f in futures]
        except BaseException:
            stop()
            raise
        share = (time.perf_counter() - t0) / len(wave)
        for i, (result, printed) in zip(wave, outcomes):
            if printed:
                print(printed, end="" if printed.endswith("\n") else "\n")
            yield i, result, share, len(wave)
