"""Chapters stand alone: every artifact a chapter reads from an earlier one is found, or built
here through the same cached calls that the chapter owning it makes.

A Colab runtime forgets everything when it is recycled, and a reader often opens one chapter
only. So chapter 5, run alone in a fresh runtime, calls :func:`synthetic_set`, which calls
:func:`diffusion_model` and :func:`teacher`: each returns at once when its artifact is in the
artifacts folder (``$KR_ARTIFACTS/<profile>``, ``<profile>-<dataset>`` for a dataset other than MNIST:
:attr:`kr_utils.config.Profile.run`; e.g. a mounted Google Drive), and otherwise
prints what it builds and about how long that took in the last recorded run, then builds it
exactly as its chapter does (same seeds, same cache files), so the chapter itself later
reuses the result.

    teacher.pt            chapter 1   teacher(cfg, device)        (cfg: a kr_utils.config.Profile)
    diffusion.pt (+ milestones)  2    diffusion_model(cfg, device)
    synthetic/            chapter 4   synthetic_set(cfg, device)
    student.pt            chapter 5   student(cfg, device)
"""
from __future__ import annotations

import dataclasses
import json
import time
from importlib import resources
from pathlib import Path

import torch

from . import analysis, data, distill, models, studies, synth, thesis, workers
from .checkpoints import load_checkpoint, load_if_current, load_model, load_schedule, save_checkpoint
from .comparison import Comparison, accuracy_interval, binomial_interval, compare_runs, variance_parts
from .config import LABEL_NAMES, Profile, get_config
from .diffusion import DiffusionOptions, NoiseSchedule, build_sampler, sampler_label, train_diffusion
from .evaluate import correct_on, counted, summarize_seeds
from .fit import seed_everything
from .runtime import device as default_device, levers
from .store import StageClock, artifact_dir, fingerprint, note_reused, read_metrics

@dataclasses.dataclass
class Chapter:
    """What a chapter's set-up cell needs (:func:`open_chapter`): its checked config (which
    carries the seed), the device, the artifacts folder of its run and the clock of its cost."""

    cfg: Profile
    device: torch.device
    out: Path
    clock: StageClock | None

    @property
    def seed(self) -> int:
        return self.cfg.seed

    def close(self) -> None:
        """Records the chapter's cost (``wall_time_s`` and ``compute_time_s`` of its run's metrics)."""
        if self.clock is not None:
            self.clock.record()


def open_chapter(stage: str | None, profile: str | None = None, *, dataset: str | None = None, seed: int | None = None,
                 record_in: str | None = None, theory: bool = False, **overrides) -> Chapter:
    """Every chapter's set-up in one call: the config of ``profile`` and ``dataset`` with ``seed``
    and ``section__key`` overrides (None values leave the profile's; :func:`kr_utils.get_config`),
    the device, the run's artifacts folder, and the clock of ``stage`` started (in the metrics of
    run ``record_in``, default the chapter's own; a ``theory`` chapter's wall time goes to
    ``theory_wall_time_s``; ``stage=None``: no clock). Prints what it found."""
    cfg = get_config(profile, dataset=dataset, seed=seed, **overrides)
    dev, out = default_device(), artifact_dir(cfg.run)
    print(f"profile={cfg.profile} dataset={cfg.dataset} seed={cfg.seed} device={dev} artifacts={out}")
    clock = None if stage is None else StageClock.start(record_in or cfg.run, stage,
                                                         "theory_wall_time_s" if theory else None)
    return Chapter(cfg, dev, out, clock)


# which chapter owns each artifact, and the recorded stage whose time estimates its cost
OWNERS = {"teacher": "01_teacher", "diffusion": "02_diffusion", "synthetic": "04_synthetic_set",
          "student": "05_student"}


def recorded_metrics(profile: str) -> dict:
    """The metrics of the last recorded run of ``profile`` shipped with the package
    (``kr_utils/recorded/<profile>.json``, a copy of ``results/<profile>/metrics.json``), or {}."""
    try:
        return json.loads(resources.files("kr_utils").joinpath("recorded", f"{profile}.json").read_text())
    except (FileNotFoundError, OSError, ValueError):
        return {}


def recorded_scale(profile: str, device) -> tuple[float, str]:
    """How many times the recorded run's time a run of ``profile`` on ``device`` is expected to
    take, and the sentence that says why: ``(1.0, "")`` where ``device`` computes in the
    recorded run's precision (:func:`kr_utils.runtime.precision`); else the ratio measured on
    a machine of this precision (the record's ``other_precisions``: a CPU without native bf16
    runs in float32), or 1.0 and a sentence that says no ratio was measured."""
    from .runtime import precision

    rec = recorded_metrics(profile)
    there, here = rec.get("environment", {}).get("precision"), precision(device)
    if there is None or there == here:
        return 1.0, ""
    other = (rec.get("other_precisions") or {}).get(here)
    if not other:
        return 1.0, f"the recorded run computed in {there}, this machine in {here}: its times may not hold here"
    return float(other["factor"]), (
        f"the recorded run computed in {there}, this machine computes in {here}; on {other['device']} "
        f"({other['date']}) {other['measured']} took {other['factor']:.2f}x their recorded time, "
        f"and the estimates here are scaled by that")


def estimate(stage: str, profile: str, device=None) -> str:
    """'about N min (recorded on <device>, <date>)' for building ``stage`` at ``profile``, scaled
    by :func:`recorded_scale` where ``device`` computes in another precision than the record."""
    rec = recorded_metrics(profile)
    seconds = (rec.get("compute_time_s") or rec.get("wall_time_s") or {}).get(OWNERS[stage])
    if seconds is None:
        return "no recorded time at this profile"
    env = rec.get("environment", {})
    text = f"about {max(1, round(seconds / 60))} min in the recorded run ({env.get('device', '?')}, {env.get('date', '?')})"
    scale, why = recorded_scale(profile, device) if device is not None else (1.0, "")
    if scale != 1.0:
        text += f"; about {max(1, round(scale * seconds / 60))} min here ({why})"
    return text


def _announce(stage: str, path: Path, cfg: Profile, device) -> None:
    print(f"{path} is missing: building it as chapter {int(OWNERS[stage][:2])} does "
          f"({stage}; {estimate(stage, cfg.profile, device)})", flush=True)


def _found(path: Path, kind: str, profile: str) -> bool:
    """Whether there is a checkpoint at ``path``; one there must be readable and of ``kind`` and
    ``profile`` (else :class:`kr_utils.store.UnreadableFileError` says what it holds and which
    chapter rebuilds it). A later chapter uses it as it is; the chapter that owns it rebuilds it
    when its settings change."""
    if not path.exists():
        return False
    load_checkpoint(path, kind, profile)  # an unreadable file, or another kind or profile, is an error
    return True


# ---------------------------------------------------------------------------------- teacher


def teacher_data(cfg: Profile, seed: int) -> dict:
    """Chapter 1's split of the real data (``cfg.dataset``): train / validation (from the
    training set, by ``seed``) and the test set, with the key that names it in the run cache."""
    tcfg = cfg.teacher
    train_img, train_lbl = data.load(cfg.dataset, "train")
    _, va_idx = data.train_val_split(len(train_img), tcfg.val_size, seed)
    tr_idx = data.fit_indices(len(train_img), tcfg.val_size, seed, tcfg.train_subset)
    x_te, y_te = data.test_tensors(cfg.test_subset, cfg.dataset)
    return {"train": (data.to_model_range(train_img[tr_idx]), torch.as_tensor(train_lbl[tr_idx]).long()),
            "val": (data.to_model_range(train_img[va_idx]), torch.as_tensor(train_lbl[va_idx]).long()),
            "test": (x_te, y_te),
            "key": fingerprint({"train": tr_idx.tolist(), "val": va_idx.tolist(), "test": len(y_te)})}


def real_validation(cfg: Profile, seed: int | None = None):
    """The declared validation split of real training digits (:func:`kr_utils.data.validation_tensors`):
    chapter 1's teacher validation digits, on which chapters 5-7 choose between students."""
    return data.validation_tensors(cfg.teacher.val_size, cfg.seed if seed is None else seed, cfg.dataset)


def teacher_run(cfg: Profile, split: dict, arch: str, seed: int, device, desc: str | None = None) -> dict:
    """One teacher of chapter 1's study (cached under ``teachers/<arch>_seed<seed>.pt``)."""
    return teacher_runs(cfg, split, arch, [seed], device, desc=desc)[seed]


def teacher_runs(cfg: Profile, split: dict, arch: str, seeds, device, desc: str | None = None) -> dict:
    """The teachers of one architecture over ``seeds`` (:func:`teacher_run` each; trained together
    where the ``group_seeds`` lever is on): ``{seed: run}``."""
    out = artifact_dir(cfg.run)
    jobs = [studies.RunJob(split["train"], split["val"], s, out / "teachers" / f"{arch}_seed{s}.pt", split["key"],
                           desc or f"{arch} seed {s}") for s in seeds]
    # no per-epoch pass over the test set: chapter 1 shows the validation curves only
    return dict(zip(seeds, studies.run_classifiers(jobs, cfg.teacher.recipe(arch), device=device, test=split["test"],
                                                   test_curve=False)))


def study_teachers(cfg: Profile, device, seed: int | None = None) -> dict:
    """Chapter 1's study teachers as models, ``{arch: [model per seed]}`` (``teacher.study_archs``
    x ``teacher.study_seeds``; found in their cache, or trained first as chapter 1 trains them)."""
    split = teacher_data(cfg, cfg.seed if seed is None else seed)
    return {arch: [models.build_classifier(arch, r["state_dict"]).to(device).eval()
                   for r in teacher_runs(cfg, split, arch, cfg.teacher.study_seeds, device).values()]
            for arch in cfg.teacher.study_archs}


def save_teacher(cfg: Profile, run: dict, seed: int) -> Path:
    """``teacher.pt`` from chapter 1's main run (bytes kept when already current)."""
    tcfg, profile = cfg.teacher, cfg.run
    path = artifact_dir(profile) / "teacher.pt"
    stage_cfg = {**tcfg.as_dict(), "seed": seed}
    if not load_if_current(path, "teacher", stage_cfg, profile):
        save_checkpoint(path, models.build_classifier(tcfg.arch, run["state_dict"]), kind="teacher",
                        config=stage_cfg, profile=profile, seed=seed,
                        extra={"history": run["history"], "arch": tcfg.arch})
    return path


def teacher(cfg: Profile, device, seed: int | None = None) -> Path:
    """``teacher.pt`` of this profile: found, or trained as chapter 1's main run."""
    seed = cfg.seed if seed is None else seed
    path = artifact_dir(cfg.run) / "teacher.pt"
    if _found(path, "teacher", cfg.run):
        return path
    _announce("teacher", path, cfg, device)
    return save_teacher(cfg, teacher_run(cfg, teacher_data(cfg, seed), cfg.teacher.arch, seed, device), seed)


def teacher_accuracy(cfg: Profile, device) -> float:
    """The teacher's real-test accuracy: chapter 1's record in ``metrics.json``, or measured now."""
    recorded = read_metrics(cfg.run).get("teacher", {}).get("test_accuracy")
    if recorded is not None:
        return recorded
    from .evaluate import classification_report, predict_logits

    model = load_model(teacher(cfg, device), "teacher", device)
    x_te, y_te = data.test_tensors(cfg.test_subset, cfg.dataset)
    return classification_report(predict_logits(model, x_te, device=device), y_te)["accuracy"]


# ---------------------------------------------------------------------------------- diffusion


def new_unet(dcfg, seed: int, cfg: Profile | None = None) -> models.ConditionalUNet:
    """A freshly initialised U-Net of ``dcfg`` whose weights depend on ``seed`` alone (not on
    whatever drew from torch's generator before in the process), for the classes and image
    shape of ``cfg``'s dataset (MNIST's without ``cfg``)."""
    seed_everything(seed)
    shape = {}
    if cfg is not None:
        channels, size, _ = cfg.data.image_shape
        shape = {"num_classes": cfg.data.num_classes, "channels": channels, "image_size": size}
    return models.ConditionalUNet(**dcfg.unet_args(), **shape)


def train_diffusion_model(cfg: Profile, device, seed: int) -> dict:
    """Chapter 2: the U-Net of the profile trained on real MNIST, its EMA weights saved at every
    milestone (``diffusion_step<N>.pt``) and at the end (``diffusion.pt``), each with its noise
    schedule; resumes from ``diffusion.partial.pt`` after an interruption; reused when current.
    Returns ``{"model", "losses", "train_time_s", "reused"}``."""
    dcfg, profile = cfg.diffusion, cfg.run
    out = artifact_dir(profile)
    stage_cfg = {**dcfg.as_dict(), "seed": seed, **data.held_out(cfg, seed)}  # a model of other digits is not current
    ckpt_path = out / "diffusion.pt"
    cached = load_if_current(ckpt_path, "diffusion", stage_cfg, profile)
    if cached:
        note_reused(cached["extra"].get("train_time_s"))
        print("reusing", ckpt_path)
        return {"model": load_model(ckpt_path, "diffusion", device), "losses": cached["extra"]["losses"],
                "train_time_s": cached["extra"].get("train_time_s"), "reused": True}

    def save(path, ema, **extra):
        save_checkpoint(path, ema, kind="diffusion", config=stage_cfg, profile=profile, seed=seed,
                        extra={"unet": ema.config, "schedule": NoiseSchedule.from_config(dcfg).spec, **extra})

    def save_milestone(step, ema):
        if step in dcfg.milestones:
            save(out / f"diffusion_step{step}.pt", ema, step=step)

    x0, y0 = data.fit_tensors(cfg, dcfg.train_subset, seed)  # the declared validation digits held out
    t0 = time.perf_counter()
    run = train_diffusion(new_unet(dcfg, seed, cfg), x0, y0, dcfg, seed=seed, device=device,
                          options=DiffusionOptions(after_step=save_milestone, resume_path=out / "diffusion.partial.pt"))
    train_time = time.perf_counter() - t0
    save(ckpt_path, run.model, losses=run.losses, train_time_s=train_time)
    (out / "diffusion.partial.pt").unlink(missing_ok=True)
    return {"model": run.model, "losses": run.losses, "train_time_s": train_time, "reused": False}


def diffusion_model(cfg: Profile, device, seed: int | None = None, with_milestones: bool = False) -> Path:
    """``diffusion.pt`` of this profile (with ``with_milestones``, its milestone checkpoints too,
    for chapter 6): found, or trained as in chapter 2."""
    seed = cfg.seed if seed is None else seed
    out = artifact_dir(cfg.run)
    path = out / "diffusion.pt"
    found = _found(path, "diffusion", cfg.run)
    if found and (not with_milestones or all((out / f"diffusion_step{m}.pt").exists()
                                             for m in cfg.diffusion.milestones)):
        return path
    if found:  # the final model is there but a milestone checkpoint is not: train again to save them
        print(f"{out} lacks milestone checkpoints of {path}: training it again to save them")
        path.unlink()
    _announce("diffusion", path, cfg, device)
    train_diffusion_model(cfg, device, seed)
    return path


def theory_diffusion_model(cfg: Profile, fallback_steps: int, device, seed: int):
    """The pipeline's diffusion model (chapter 2's ``diffusion.pt``) when it exists; otherwise a
    U-Net of the profile's size trained here for ``fallback_steps`` steps on real MNIST and
    cached as ``theory_diffusion.pt``, so a theory chapter opened on its own still runs in
    minutes. Returns ``(model, schedule, where_it_came_from)``."""
    out = artifact_dir(cfg.run)
    if (out / "diffusion.pt").exists():
        path, source = out / "diffusion.pt", "the pipeline's model (chapter 2)"
    else:
        dcfg = dataclasses.replace(cfg.diffusion, steps=fallback_steps, milestones=(fallback_steps,))
        path, source = out / "theory_diffusion.pt", f"a U-Net trained for {fallback_steps} steps here"
        stage_cfg = {**dcfg.as_dict(), "seed": seed, **data.held_out(cfg, seed)}
        if not load_if_current(path, "diffusion", stage_cfg, cfg.run):
            x0, y0 = data.fit_tensors(cfg, None, seed)
            run = train_diffusion(new_unet(dcfg, seed, cfg), x0, y0, dcfg, seed=seed, device=device)
            save_checkpoint(path, run.model, kind="diffusion", config=stage_cfg, profile=cfg.run, seed=seed,
                            extra={"losses": run.losses, "unet": run.model.config, "schedule": NoiseSchedule.from_config(dcfg).spec})
    return load_model(path, "diffusion", device), load_schedule(path), source


# ---------------------------------------------------------------------------------- synthetic set


def make_synthetic_set(cfg: Profile, device, seed: int) -> tuple[dict, bool]:
    """Chapter 4: the labelled synthetic set from the profile's teacher and diffusion model
    (both found or built first), reused when built from the same settings and checkpoints.
    Returns ``(summary, reused)``."""
    out = artifact_dir(cfg.run)
    t_path, d_path = teacher(cfg, device, seed), diffusion_model(cfg, device, seed)
    settings = cfg.synth.as_dict()
    if settings["shards"] == 1:  # a set of one draw keeps the key it had before shards existed
        del settings["shards"]
    key = fingerprint({**settings, **cfg.sampler.as_dict(), "seed": seed}, t_path, d_path)
    summary = synth.cached_summary(out / "synthetic", key)
    if summary is not None:
        print("reusing", out / "synthetic")
        note_reused(summary["generation_time_s"])
        return summary, True
    t0 = time.perf_counter()
    result = _draw_set(cfg, t_path, d_path, device, seed)
    gen_time = time.perf_counter() - t0
    summary = synth.save_synthetic_set(out / "synthetic", result, key=key, extra={
        "generation_time_s": round(gen_time, 1), "generated_per_s": result["generated"] / gen_time})
    return summary, False


def _set_shard(cfg: Profile, t_path: Path, d_path: Path, device, seed: int, rank: int | None = None) -> dict | None:
    """Shard ``rank`` of the synthetic set of ``cfg.synth.shards`` (the whole set when ``rank`` is
    None), drawn with the checkpoints at ``t_path`` and ``d_path`` (in a worker process, or here)."""
    unet, clf = load_model(d_path, "diffusion", device), load_model(t_path, "teacher", device)
    source = synth.DigitSource(unet, build_sampler(cfg.sampler, load_schedule(d_path)), clf)
    world = cfg.synth.shards
    if rank is not None:
        return synth.build_shard(source, cfg.synth, cfg.sampler, seed=seed, rank=rank, world=world,
                                 device=device, progress=False)
    if world == 1:
        return synth.build_synthetic_set(source, cfg.synth, cfg.sampler, seed=seed, device=device)
    return synth.build_sharded_set(source, cfg.synth, cfg.sampler, seed=seed, world=world, device=device)


def _shards_side_by_side(device) -> bool:
    """Whether :func:`_draw_set` draws a set's shards in worker processes: the ``parallel_runs`` lever, on a CPU."""
    return levers(device).parallel_runs and torch.device(device).type == "cpu"


def _draw_set(cfg: Profile, t_path: Path, d_path: Path, device, seed: int) -> dict:
    """The labelled synthetic set of ``cfg``: one draw, or ``cfg.synth.shards`` shards merged
    (:func:`kr_utils.synth.merge_shards`). Where the ``parallel_runs`` lever is on (a CPU of two cores or
    more), the shards are drawn side by side in worker processes, each with its share of the
    threads; the merged set is the one that the shards drawn one after another make."""
    world = cfg.synth.shards
    if world == 1 or not _shards_side_by_side(device):
        return _set_shard(cfg, t_path, d_path, device, seed)
    threads = workers.threads_per_run(world)
    print(f"drawing the set in {world} shards side by side in worker processes, {threads} thread(s) each", flush=True)
    calls = [((cfg, t_path, d_path, "cpu", seed, rank), {}) for rank in range(world)]
    shards = dict((i, shard) for i, shard, _, _ in workers.run_in_waves(_set_shard, calls, threads_each=threads))
    return synth.merge_shards([shards[r] for r in range(world)])


def synthetic_set_texts(cfg: Profile, summary: dict, report: dict, device) -> dict:
    """Chapter 4's sentences on its set (``summary``: :func:`make_synthetic_set`'s; ``report``:
    :func:`kr_utils.synth.threshold_report` at the configured threshold): its size, what was
    drawn and passed, the digits that passed but found their class full, the threshold against
    the thesis', the labels, the teacher's agreement with the request, its time and rate."""
    passed = round(report["accepted_at_threshold"] * summary["generated"])  # above the threshold, kept or not
    return {"synth_size": f"{summary['size']:,d}", "synth_generated": f"{summary['generated']:,d}",
            "synth_acceptance": f"{100 * report['accepted_at_threshold']:.1f}%",
            "synth_overflow": f"{max(passed - (summary['size'] - report['kept_below_threshold']), 0):,d}",
            "synth_threshold": f"{cfg.synth.threshold:g}",
            "synth_thesis_thr": f"{thesis.GENERATION['threshold']:g} in its text, {thesis.RECIPE.threshold:g} the default "
                                "of its code",
            "synth_threshold_note": analysis.threshold_note(report, "digits"),
            "synth_label_mode": "the teacher's argmax, as the thesis' text describes" if cfg.synth.label_mode == "teacher"
                                else "the requested class, as the thesis' code kept it",
            "synth_kept_share": f"{100 * summary['size'] / summary['generated']:.1f}%",
            "synth_agreement": f"{100 * summary['agreement']:.1f}%" if summary["agreement"] is not None else "n/a",
            "synth_time": f"{summary['generation_time_s'] / 60:.1f}", "synth_rate": f"{summary['generated_per_s']:.0f}",
            "synth_sampler": sampler_label(cfg.sampler), "synth_shards_note": shards_note(cfg, device)}


def shards_note(cfg: Profile, device) -> str:
    """The sentence of chapters 4 and 10 that says how :func:`_draw_set` draws ``cfg``'s set on ``device``."""
    world = cfg.synth.shards
    if world == 1:
        return "The set is drawn in one go."
    where = "side by side in worker processes on this CPU" if _shards_side_by_side(device) else "one after another"
    return (f"The set is drawn as {world} shards, each with its own part of every class and its own seed "
            f"(kr_utils.synth.build_shard), {where}, then merged class by class.")


def synthetic_set(cfg: Profile, device, seed: int | None = None) -> Path:
    """The folder of the profile's synthetic set: found (and current), or built as in chapter 4."""
    seed = cfg.seed if seed is None else seed
    folder = artifact_dir(cfg.run) / "synthetic"
    if not (folder / "summary.json").exists():
        _announce("synthetic", folder, cfg, device)
        make_synthetic_set(cfg, device, seed)
    return folder


# ---------------------------------------------------------------------------------- student


def student_split(cfg: Profile, device, seed: int | None = None) -> dict:
    """Chapter 5's data: the synthetic set (found or built) split into training and validation
    digits by ``seed``, the real test set, and the key naming this split in the run cache."""
    seed = cfg.seed if seed is None else seed
    val_fraction = cfg.student.val_fraction
    stored = synth.load_synthetic_set(synthetic_set(cfg, device, seed))
    syn_train, syn_val = distill.synthetic_split(stored["images"], stored["labels"], stored["logits"],
                                                 val_fraction, seed)
    return {"train": syn_train, "val": syn_val, "test": data.test_tensors(cfg.test_subset, cfg.dataset), "stored": stored,
            "real_val": real_validation(cfg),
            "key": fingerprint({"set": stored["summary"]["inputs_key"], "split_seed": seed, "val_fraction": val_fraction})}


def student_run(cfg: Profile, split: dict, arch: str, labels: str, seed: int, device) -> dict:
    """One student of chapter 5's grid (cached under ``students/<arch>_<labels>_seed<seed>.pt``)."""
    return student_runs(cfg, split, arch, labels, [seed], device)[seed]


def student_runs(cfg: Profile, split: dict, arch: str, labels: str, seeds, device, epochs: int | None = None) -> dict:
    """One cell of chapter 5's grid over ``seeds`` (:func:`student_run` each; trained together
    where the ``group_seeds`` lever is on): ``{seed: run}``. ``epochs``: the runs' epochs, the
    main student's (``student.epochs``) where None; runs of other epochs are cached under
    ``students/<arch>_<labels>_<epochs>ep_seed<seed>.pt``, so that the two never replace each other."""
    epochs = cfg.student.epochs if epochs is None else epochs
    tag = "" if epochs == cfg.student.epochs else f"_{epochs}ep"
    out = artifact_dir(cfg.run)
    jobs = [studies.RunJob(split["train"], split["val"], s, out / "students" / f"{arch}_{labels}{tag}_seed{s}.pt",
                           split["key"], f"{arch} {labels}{tag} seed {s}") for s in seeds]
    recipe = cfg.student.recipe(arch=arch, labels=labels, epochs=epochs)
    return dict(zip(seeds, studies.run_classifiers(jobs, recipe, device=device, test=split["test"],
                                                   holdout=split.get("real_val"))))


@dataclasses.dataclass(frozen=True)
class StudentGrid:
    """Chapter 5's students (:func:`student_grid`): ``main``, the profile's student over
    ``student.seeds`` (``{seed: run}``); ``cells``, every cell of the grid over its seeds
    (``cells[(arch, labels)][seed]``), each architecture's cells trained for its epochs of
    ``budget`` (:func:`grid_budget`); ``main_cell``, the main student's ``(arch, labels)``."""

    main_cell: tuple[str, str]
    main: dict
    cells: dict
    budget: dict | None = None  # grid_budget's choice: {"epochs": {arch: n}, "val_real_accuracy": ...}

    @property
    def shared(self) -> bool:
        """Whether the grid's main cell is the main student itself (the studies train as long as it does)."""
        return self.cells.get(self.main_cell) is self.main

    def train_time_s(self) -> float:
        """The training time of every run, each counted once."""
        runs = {id(r): r for rs in (self.main, *self.cells.values()) for r in rs.values()}
        return sum(r["train_time_s"] for r in runs.values())

    def validation_summaries(self) -> dict:
        """``{cell: summary}``: each cell's accuracy on the real validation digits
        (``val_real_accuracy``), summarised over its seeds (:func:`kr_utils.evaluate.summarize_seeds`)."""
        return {cell: summarize_seeds([r["val_real_accuracy"] for r in rs.values()]) for cell, rs in self.cells.items()}

    def best_on_validation(self) -> tuple[tuple[str, str], dict]:
        """The cell whose students score highest on the real validation digits (the mean of
        :meth:`validation_summaries`), with that summary: chapter 5's choice, which the test set
        only scores."""
        val = self.validation_summaries()
        best = max(val, key=lambda c: val[c]["mean"])
        return best, val[best]

    def soft_vs_hard(self, y_test) -> Comparison | None:
        """For the main architecture, its soft-target cell (τ = 4) against its hard-label cell on
        the test digits ``y_test``: the difference of mean accuracies with an interval over the
        training seeds and the test digits (:func:`kr_utils.comparison.compare_runs`), paired on
        the seeds the two cells share where they share two or more. None where the grid lacks either cell."""
        hard, soft = self.cells.get((self.main_cell[0], "hard")), self.cells.get((self.main_cell[0], "soft_t4"))
        if hard is None or soft is None:
            return None
        both = [s for s in sorted(soft) if s in hard]  # paired on the seeds the two cells share
        if len(both) >= 2:
            return compare_runs(correct_on([soft[s] for s in both], y_test), correct_on([hard[s] for s in both], y_test))
        return compare_runs(correct_on(soft, y_test), correct_on(hard, y_test), paired=False)


def kept_synthetic_val(runs: dict) -> float:
    """The mean over ``runs`` (``{seed: run}``) of the synthetic-validation accuracy at the epoch
    whose weights were kept (``history['best_epoch']``): what the thesis' Table 7 scored its
    students on."""
    def kept(h):
        return h["val_acc"][h["epoch"].index(h["best_epoch"])]
    return sum(kept(r["history"]) for r in runs.values()) / len(runs)


def grid_budget(cfg: Profile, split: dict, device) -> dict:
    """Each architecture's epochs in chapter 5's grid, chosen on the real validation digits
    (``split["real_val"]``, digits no model trains on): for each of ``studies.grid_archs``, one
    student (the first of ``studies.grid_seeds``, the main student's labels) per candidate of
    ``studies.grid_epoch_choices``, the candidate with the highest ``val_real_accuracy`` kept (the
    fewest epochs on a tie). Without candidates every architecture gets
    :attr:`kr_utils.config.Profile.study_epochs`. Returns ``{"epochs": {arch: epochs},
    "val_real_accuracy": {arch: {epochs: accuracy}}}``; the test set is only scored."""
    e, labels = cfg.studies, cfg.student.recipe().labels
    if not e.grid_epoch_choices:
        return {"epochs": {a: cfg.study_epochs for a in e.grid_archs}, "val_real_accuracy": {}}
    seed, scores = e.grid_seeds[0], {}
    for arch in e.grid_archs:
        scores[arch] = {n: student_runs(cfg, split, arch, labels, [seed], device, epochs=n)[seed]["val_real_accuracy"]
                        for n in e.grid_epoch_choices}
    chosen = {a: max(v, key=lambda n: (v[n], -n)) for a, v in scores.items()}
    return {"epochs": chosen, "val_real_accuracy": scores}


def student_grid(cfg: Profile, split: dict, device) -> StudentGrid:
    """Chapter 5's students, each run found in the cache or trained: the profile's own student
    over ``student.seeds``, and every architecture x label setting of ``studies`` over
    ``studies.grid_seeds``, each architecture for its epochs of :func:`grid_budget` (chosen on
    the real validation digits). Where the main architecture's are the main student's epochs,
    the grid's main cell is the main student (its seeds, not trained twice); where they differ,
    the grid trains that cell too, at its own epochs."""
    st, e = cfg.student, cfg.studies
    main_cell = (st.arch, st.recipe().labels)
    main = student_runs(cfg, split, *main_cell, st.seeds, device)
    budget = grid_budget(cfg, split, device)
    epochs = budget["epochs"]
    shared = epochs.get(st.arch, cfg.study_epochs) == st.epochs
    cells = {main_cell: main} if shared else {}
    for cell in [main_cell] + [(a, lab) for a in e.grid_archs for lab in e.grid_labels if (a, lab) != main_cell]:
        if cell not in cells:
            cells[cell] = student_runs(cfg, split, *cell, e.grid_seeds, device, epochs=epochs.get(cell[0], cfg.study_epochs))
    return StudentGrid(main_cell=main_cell, main=main, cells=cells, budget=budget)


def save_student(cfg: Profile, run: dict, seed: int) -> Path:
    """``student.pt``: the main cell's first seed."""
    st = cfg.student
    path = artifact_dir(cfg.run) / "student.pt"
    save_checkpoint(path, models.build_classifier(st.arch, run["state_dict"]), kind="student", config=st.as_dict(),
                    profile=cfg.run, seed=seed, extra={"arch": st.arch, "history": run["history"]})
    return path


def student(cfg: Profile, device, seed: int | None = None) -> Path:
    """``student.pt`` of this profile: found, or trained as chapter 5's main student (first seed)."""
    path = artifact_dir(cfg.run) / "student.pt"
    if _found(path, "student", cfg.run):
        return path
    _announce("student", path, cfg, device)
    split = student_split(cfg, device, seed)
    st = cfg.student
    first = st.seeds[0]
    run = student_run(cfg, split, st.arch, st.recipe().labels, first, device)
    return save_student(cfg, run, first)


# ---------------------------------------------------------------------------------- analysis

ANALYSIS_SECTIONS = ("teacher", "diffusion", "generation", "synthetic_set", "student", "degradation", "ablation")


def analysis_metrics(profile: str, sections: tuple = ANALYSIS_SECTIONS) -> tuple[dict, str]:
    """Chapter 8's numbers: this run's ``metrics.json`` when chapters 1-7 (their ``sections``;
    chapter 10 asks for chapters 1-5's) have all written to it, else the last recorded run of the
    profile shipped with the package (said so in the text), so that chapter 8 opened alone still
    shows a whole comparison; the synthetic set's per-class table attached to its section.
    Returns ``(metrics, source)``."""
    import pandas as pd

    local = read_metrics(profile)
    missing = [k for k in sections if k not in local]
    if not missing:
        csv = artifact_dir(profile) / "synthetic" / "confidence_per_class.csv"
        local["synthetic_set"]["confidence_per_class"] = pd.read_csv(csv).to_dict(orient="list")
        return local, "this run"
    recorded = recorded_metrics(profile)
    if recorded and all(k in recorded for k in sections):
        env = recorded.get("environment", {})
        print(f"metrics.json of profile {profile!r} lacks {missing} (chapters 1-7 have not all run here): "
              f"showing the recorded run instead")
        with resources.files("kr_utils").joinpath("recorded", f"{profile}_confidence_per_class.csv").open() as f:
            recorded["synthetic_set"]["confidence_per_class"] = pd.read_csv(f).to_dict(orient="list")
        return recorded, f"the recorded {profile} run ({env.get('device', '?')}, {env.get('date', '?')})"
    raise FileNotFoundError(f"metrics.json of profile {profile!r} in {artifact_dir(profile)} lacks "
                            f"{missing}, and no recorded run of this profile is shipped: run chapters 1-7 first")


def grid_texts(cfg: Profile, grid, teacher_right, test_labels) -> dict:
    """Chapter 5's sentences on the student grid (:func:`student_grid`): the main cell, the
    seeds per cell and what their interval rests on, each architecture's budget and how it was
    chosen, the main student's accuracy, its interval over seeds and test digits, its gap to the
    teacher (``teacher_right``: one row, right or wrong on each test digit; unpaired), the first
    seed's Wilson interval (the test set's own error) and which part of the variance is larger."""
    scfg, seeds = cfg.student, cfg.studies.grid_seeds
    accs = summarize_seeds([r["accuracy"] for r in grid.main.values()])
    correct = correct_on(grid.main, test_labels)
    chosen = grid.budget["epochs"]
    edge = studies.edge_note(chosen, cfg.studies.grid_epoch_choices)
    budget = (f"each architecture trains for {counted(cfg.study_epochs, 'epoch')}, fixed by the profile"
              if not grid.budget["val_real_accuracy"] else
              "each architecture trains for its own number of epochs, chosen from "
              f"{', '.join(map(str, cfg.studies.grid_epoch_choices))} on the real validation digits "
              "(kr_utils.pipeline.grid_budget, one student each): "
              + ", ".join(f"{a} {counted(n, 'epoch')}" for a, n in chosen.items())
              + ("" if grid.shared else f"; the profile's student keeps its {counted(scfg.epochs, 'epoch')} "
                 "(its recipe was fixed before this search, and chapters 6-11 build on it), so the grid trains its cell "
                 "once more at the chosen budget")
              + (f". {edge}" if edge else ""))
    _, s_lo, s_hi = accuracy_interval(correct)  # seeds and test digits
    n_test = len(test_labels)
    first = grid.main[scfg.seeds[0]]  # the test set's own sampling error, which no number of seeds removes (Wilson)
    lo, hi = binomial_interval(round(first["accuracy"] * n_test), n_test)
    v_seeds, v_digits = variance_parts(correct)
    return {
        "student_main_cell": f"{grid.main_cell[0]}, {LABEL_NAMES[grid.main_cell[1]]}",
        "grid_seeds_n": counted(len(seeds), "seed"),
        "grid_df_sentence": f"With {counted(len(seeds), 'seed')} per cell the seeds' share of that interval rests on "
                            f"{counted(len(seeds) - 1, 'degree')} of freedom, so it is wide; the seeds are printed beside "
                            "it." if len(seeds) > 1 else "With one seed per cell the interval holds the test digits' "
                            "sampling error only: the seeds' spread is not measured.",
        "grid_budget": budget, "student_acc": f"{100 * accs['mean']:.2f}%",
        "student_gap": compare_runs(teacher_right, correct, paired=False).sentence("the teacher", "the student"),
        "student_seeds": counted(accs["n"], "seed"), "student_interval": f"[{100 * s_lo:.2f}, {100 * s_hi:.2f}]",
        "student_spread": "" if accs["std"] is None else f", ± {100 * accs['std']:.2f} std over seeds",
        "student_test_interval": f"[{100 * lo:.2f}, {100 * hi:.2f}]", "student_test_n": f"{n_test:,d}",
        "student_test_halfwidth": f"{100 * (hi - lo) / 2:.2f}",
        "student_larger_part": "the larger" if v_digits >= v_seeds else "the smaller (here the seeds vary more)",
        "student_labels": LABEL_NAMES[grid.main_cell[1]]}
