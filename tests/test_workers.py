"""kr_utils.workers and the parallel_runs lever: independent runs side by side in worker
processes, with the same results as one after another, and no hang when a worker fails."""
import math
import os
import subprocess
import sys
import textwrap
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
import torch

from kr_utils import config, runtime, studies, workers
from kr_utils.studies import RunJob

ROOT = Path(__file__).resolve().parents[1]


def test_waves_group_calls_by_cores_and_a_small_last_wave_joins_the_one_before():
    assert workers.waves(3, 2) == [[0, 1, 2]]
    assert workers.waves(4, 2) == [[0, 1], [2, 3]]
    assert workers.waves(5, 2) == [[0, 1], [2, 3, 4]]
    assert workers.waves(2, 1) == [[0], [1]]
    assert workers.waves(1, 2) == [[0]]
    assert workers.waves(0, 2) == []


def test_threads_per_run_shares_the_threads_among_the_runs_the_cores_hold():
    assert workers.threads_per_run(1, threads=2, n_cores=2) == 2
    assert workers.threads_per_run(2, threads=2, n_cores=2) == 1
    assert workers.threads_per_run(5, threads=2, n_cores=2) == 1
    assert workers.threads_per_run(2, threads=8, n_cores=8) == 4
    assert workers.threads_per_run(3, threads=8, n_cores=2) == 4


def test_each_call_gets_its_threads_and_a_lone_call_runs_here():
    torch.set_num_threads(2)
    out = {i: (r, k) for i, r, _, k in workers.run_in_waves(torch.get_num_threads, [((), {})] * 3,
                                                             n_cores=2, threads_each=1)}
    assert out == {0: (1, 3), 1: (1, 3), 2: (1, 3)}  # one wave of three, one thread each
    alone = list(workers.run_in_waves(torch.get_num_threads, [((), {})], n_cores=2, threads_each=1))
    assert alone[0][1] == 1 and torch.get_num_threads() == 2  # here, with one thread, then two again
    pids = [r for _, r, *_ in workers.run_in_waves(os.getpid, [((), {})] * 2, n_cores=2, threads_each=1)]
    assert os.getpid() not in pids
    assert [r for _, r, *_ in workers.run_in_waves(os.getpid, [((), {})], n_cores=2, threads_each=1)] == [os.getpid()]


def test_results_come_back_in_order_with_each_calls_arguments():
    got = list(workers.run_in_waves(pow, [((2, k), {}) for k in range(5)], n_cores=2, threads_each=1))
    assert [i for i, *_ in got] == [0, 1, 2, 3, 4]
    assert [r for _, r, *_ in got] == [1, 2, 4, 8, 16]
    assert all(share > 0 for *_, share, _ in got)


def test_an_error_in_a_worker_is_raised_here():
    with pytest.raises(ValueError, match="math domain error"):
        list(workers.run_in_waves(math.sqrt, [((4.0,), {}), ((-1.0,), {})], n_cores=2, threads_each=1))


def test_a_worker_that_dies_raises_instead_of_hanging():
    with pytest.raises(BrokenProcessPool):
        list(workers.run_in_waves(os._exit, [((3,), {}), ((3,), {})], n_cores=2, threads_each=1))
    # the next call starts new workers
    assert [r for _, r, *_ in workers.run_in_waves(abs, [((-1,), {}), ((-2,), {})], n_cores=2, threads_each=1)] == [1, 2]


def test_a_worker_sees_the_callers_kr_environment_at_each_call(monkeypatch):
    monkeypatch.setenv("KR_PRECISION", "fp32")
    first = [r for _, r, *_ in workers.run_in_waves(os.getenv, [(("KR_PRECISION",), {})] * 2, n_cores=2, threads_each=1)]
    monkeypatch.setenv("KR_PRECISION", "bf16")
    later = [r for _, r, *_ in workers.run_in_waves(os.getenv, [(("KR_PRECISION",), {})] * 2, n_cores=2, threads_each=1)]
    assert first == ["fp32", "fp32"] and later == ["bf16", "bf16"]
    with runtime.use_levers(compile=True):
        seen = [r for _, r, *_ in workers.run_in_waves(runtime.levers, [(("cpu",), {})] * 2, n_cores=2, threads_each=1)]
    assert all(lv.compile for lv in seen)


def test_a_script_without_a_main_guard_is_not_run_again_in_the_workers(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        from kr_utils import workers
        print("top level ran")
        print(sorted(r for _, r, *_ in workers.run_in_waves(abs, [((-1,), {}), ((-2,), {})], n_cores=2, threads_each=1)))
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("top level ran") == 1 and "[1, 2]" in res.stdout


def test_the_lever_is_on_for_a_cpu_of_two_cores_and_can_be_switched_off(monkeypatch):
    assert runtime.levers("cpu").parallel_runs == (runtime.cores() >= 2)
    assert not runtime.levers("cuda").parallel_runs
    monkeypatch.setenv(runtime.LEVERS_ENV, "parallel_runs=0")
    assert not runtime.levers("cpu").parallel_runs


def _jobs(folder, n=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 1, 28, 28, generator=g)
    y, logits = torch.randint(0, 10, (300,), generator=g), torch.randn(300, 10, generator=g)
    train, val = (x[:250], y[:250], logits[:250]), (x[250:], y[250:], logits[250:])
    return [RunJob(train, val, s, folder / f"seed{s}.pt", "inputs", f"seed {s}") for s in range(n)], (x[:100], y[:100])


def test_runs_side_by_side_equal_runs_one_after_another(tmp_path):
    recipe = config.ClassifierRecipe(arch="simple_cnn", epochs=2, batch_size=64, lr=2e-3, patience=3,
                                     soft=True, augment=True)
    jobs, test = _jobs(tmp_path / "side")
    with runtime.use_levers(parallel_runs=True):
        side = studies.run_classifiers(jobs, recipe, device="cpu", test=test, holdout=test)
    serial_jobs, _ = _jobs(tmp_path / "serial")
    with runtime.use_levers(parallel_runs=False):
        serial = studies.run_classifiers(serial_jobs, recipe, device="cpu", test=test, holdout=test)
    for a, b in zip(side, serial):
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=0.011)  # at most one test image of 100
        assert a["history"]["val_loss"] == pytest.approx(b["history"]["val_loss"], rel=1e-3)
        for k in a["state_dict"]:
            assert torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-3), k
    if runtime.cores() >= 2 and torch.get_num_threads() == 2:
        assert [r["side_by_side"] for r in side] == [3, 3, 3]
    # each run was cached as it finished: a second call trains nothing
    with runtime.use_levers(parallel_runs=True):
        again = studies.run_classifiers(jobs, recipe, device="cpu", test=test, holdout=test)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in side]
    assert all(Path(j.cache_path).exists() for j in jobs)


def test_a_worker_leaves_interrupts_to_its_parent():
    import signal

    # a Ctrl-C reaches the whole process group: the workers ignore it, the parent stops them
    got = [r for _, r, *_ in workers.run_in_waves(signal.getsignal, [((signal.SIGINT,), {})] * 2, n_cores=2,
                                                  threads_each=1)]
    assert got == [signal.SIG_IGN, signal.SIG_IGN]


def test_an_interrupt_here_stops_the_workers_at_once():
    import signal
    import threading
    import time

    seen = []

    def interrupt():
        time.sleep(4)
        pool = workers._pool
        seen.extend((getattr(pool, "_processes", None) or {}).values())
        os.kill(os.getpid(), signal.SIGINT)  # as a person's Ctrl-C or a stopped cell

    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        list(workers.run_in_waves(time.sleep, [((60,), {}), ((60,), {})], n_cores=2, threads_each=1))
    assert time.perf_counter() - t0 < 30 and seen
    def gone(pid):  # no such process, or a zombie not yet reaped
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
        except OSError:
            return True

    deadline = time.time() + 10
    while not all(gone(p.pid) for p in seen) and time.time() < deadline:
        time.sleep(0.2)
    assert all(gone(p.pid) for p in seen)
    assert workers._pool is None


def test_a_run_retrained_alone_after_an_interruption_has_the_numbers_it_first_had(tmp_path):
    recipe = config.ClassifierRecipe(arch="simple_cnn", epochs=1, batch_size=64, lr=2e-3, patience=3, augment=True)
    jobs, test = _jobs(tmp_path, n=2)
    with runtime.use_levers(parallel_runs=True):
        first = studies.run_classifiers(jobs, recipe, device="cpu", test=test)
        Path(jobs[1].cache_path).unlink()  # lost: retrained, now the only run left to train
        again = studies.run_classifiers(jobs, recipe, device="cpu", test=test)
    for k, v in first[1]["state_dict"].items():
        assert torch.equal(v, again[1]["state_dict"][k]), k


def test_a_set_drawn_in_shards_side_by_side_is_the_set_drawn_one_shard_after_another(tmp_path, monkeypatch, mnist_dir,
                                                                                     capsys):
    import shutil

    import numpy as np

    from kr_utils import pipeline, synth

    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path / "side"))
    cfg = config.get_config("smoke", synth__shards=2)
    one = config.get_config("smoke")
    pipeline.teacher(cfg, "cpu")
    pipeline.diffusion_model(cfg, "cpu")
    shutil.copytree(tmp_path / "side", tmp_path / "serial")
    with runtime.use_levers(parallel_runs=True):
        side, reused = pipeline.make_synthetic_set(cfg, "cpu", cfg.seed)
    assert not reused
    if runtime.cores() >= 2:  # the shards were drawn in worker processes
        assert "2 shards side by side in worker processes" in capsys.readouterr().out
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path / "serial"))
    before = torch.get_num_threads()
    torch.set_num_threads(workers.threads_per_run(2))  # the threads each shard had in its worker
    try:
        with runtime.use_levers(parallel_runs=False):
            serial, _ = pipeline.make_synthetic_set(cfg, "cpu", cfg.seed)
    finally:
        torch.set_num_threads(before)
    a = synth.load_synthetic_set(tmp_path / "side" / "smoke" / "synthetic")
    b = synth.load_synthetic_set(tmp_path / "serial" / "smoke" / "synthetic")
    for k in ("images", "labels", "logits", "requested"):
        assert np.array_equal(a[k], b[k]), k
    assert side["generated"] == serial["generated"] and side["size"] == cfg.synth.per_class * cfg.num_classes
    # a set of one draw is another set: not taken for the sharded one, nor the sharded one for it
    with runtime.use_levers(parallel_runs=False):
        whole, reused = pipeline.make_synthetic_set(one, "cpu", one.seed)
    assert not reused
    c = synth.load_synthetic_set(tmp_path / "serial" / "smoke" / "synthetic")
    assert not np.array_equal(c["images"], b["images"])


def test_degradation_draws_side_by_side_equal_them_one_after_another(tmp_path, monkeypatch, mnist_dir):
    import shutil

    import numpy as np

    from kr_utils import checkpoints, diffusion, pipeline, store

    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path / "side"))
    cfg = config.get_config("smoke")
    steps = cfg.studies.degradation_milestones
    t_path, d_path = pipeline.teacher(cfg, "cpu"), pipeline.diffusion_model(cfg, "cpu", with_milestones=True)
    shutil.copytree(tmp_path / "side", tmp_path / "serial")
    teacher = checkpoints.load_model(t_path, "teacher", "cpu")
    sampler = diffusion.build_sampler(cfg.sampler, checkpoints.load_schedule(d_path))
    waves = []
    real = workers.run_in_waves

    def seen(fn, calls, *, threads_each, **kw):
        waves.append((len(calls), threads_each))
        return real(fn, calls, threads_each=threads_each, **kw)

    monkeypatch.setattr(workers, "run_in_waves", seen)
    drawn_here = []
    draw = studies.synth.draw_labelled
    monkeypatch.setattr(studies.synth, "draw_labelled", lambda *a, **k: drawn_here.append(1) or draw(*a, **k))
    clock = store.StageClock.start("smoke", "test")
    with runtime.use_levers(parallel_runs=True):
        side = studies.degradation_sets(cfg, steps, teacher, sampler, seed=0, device="cpu")
    assert waves == [(len(steps), workers.threads_per_run(len(steps)))]
    if runtime.cores() >= 2:  # drawn in the workers (which do not see this patch), and cached from there
        assert drawn_here == []
    assert clock.reused_s == 0  # the draws made here are not charged again as reused
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path / "serial"))
    before = torch.get_num_threads()
    torch.set_num_threads(workers.threads_per_run(len(steps)))
    try:
        with runtime.use_levers(parallel_runs=False):
            serial = studies.degradation_sets(cfg, steps, teacher, sampler, seed=0, device="cpu")
    finally:
        torch.set_num_threads(before)
    assert list(side) == list(steps)
    for step in steps:
        assert side[step][0] == serial[step][0]
        for k in ("images", "labels", "logits"):
            assert np.array_equal(np.asarray(side[step][1][k]), np.asarray(serial[step][1][k])), (step, k)
    # found the second time: nothing is drawn again
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path / "side"))
    monkeypatch.setattr(studies, "degradation_pool", lambda *a, **k: pytest.fail("drawn again"))
    with runtime.use_levers(parallel_runs=True):
        again = studies.degradation_sets(cfg, steps, teacher, sampler, seed=0, device="cpu")
    assert waves[1:] in ([], [(0, workers.threads_per_run(len(steps)))])
    assert all(torch.equal(again[s][1]["images"], side[s][1]["images"]) for s in steps)
