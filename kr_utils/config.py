"""Stage 0: run configuration. One dictionary per profile (nanoGPT style), validated
before any training starts.

- ``smoke``: CI; every notebook in seconds, tiny models, numbers meaningless.
- ``cpu``: ``make book``'s default; the whole book, experiments included, on a 2-core machine
  with bf16 (46 min measured, ``results/cpu/``; the last float32 build, of an earlier commit,
  1 h 46 min), real results (smaller epochs, seeds and sizes than the thesis, stated per chapter).
- ``gpu``: thesis scale (60k synthetic digits), for a data-centre GPU (A100, H100).
- ``t4``: the gpu profile's pipeline with smaller studies around it, for a free Colab T4.
- ``auto`` (the notebooks' default) picks one of the last three by the device.
"""
from __future__ import annotations

import copy
import os

PROFILES: dict[str, dict] = {
    "smoke": dict(
        # cell_timeout_s: the longest any one notebook cell may run under the book's runner and
        # nbval before the run fails naming the chapter and the cell (a hang never waits for hours)
        seed=0, test_subset=2000, cell_timeout_s=300,
        teacher=dict(arch="resnet_preact", epochs=1, train_subset=2000, val_size=500,
                     batch_size=64, lr=2e-3, patience=3, study_archs=("resnet_preact", "simple_cnn"),
                     study_seeds=(0, 1)),
        diffusion=dict(base=8, mults=(1, 2, 2), attention=False, T=1000, beta_start=1e-4,
                       beta_end=0.02, steps=30, batch_size=64, lr=2e-3, p_uncond=0.1,
                       ema_decay=0.9, train_subset=2000, milestones=(10, 30)),
        generation=dict(sampler="ddim", num_steps=5, guidance_w=2.0, clip_x0=True,
                        x_T_scale=1.0, noise_scale=1.0, batch_size=100, demo_per_class=1,
                        knob_steps=5, knob_per_class=2),
        # An untrained generator makes noise the teacher calls "0" with low confidence:
        # only the requested label and a low threshold fill ten quotas in seconds.
        synth=dict(per_class=10, threshold=0.15, threshold_floor=0.1, max_rounds=50,
                   label_mode="requested", mode="balanced", oversample=2.0),
        student=dict(arch="resnet_preact", epochs=1, batch_size=64, lr=2e-3, patience=3,
                     val_fraction=0.1, soft=False, temperature=4.0, alpha=0.5, augment=False,
                     seeds=(0,)),
        experiments=dict(grid_archs=("resnet_preact", "simple_cnn"), grid_labels=("hard", "soft_t4"),
                         grid_seeds=(0,), degradation_milestones=(10, 30), degradation_per_class=10, degradation_epochs=1,
                         ablation_per_class=10, ablation_seeds=(0,), thesis_per_class=5),
        theory=dict(toy_steps=150, toy_hidden=64, toy_samples=300, classifier_steps=100,
                    ae_T=10, ae_hidden=16, ae_shared_hidden=64, ae_steps=20, ae_shared_steps=40,
                    ae_batch=32, ae_samples=20, recon_digits=2, recon_fallback_steps=30),
    ),
    "cpu": dict(
        # the longest cpu chapter took 12 min in all on 2 cores (results/cpu); a cell gets an hour
        seed=0, test_subset=None, cell_timeout_s=3600,
        # Teachers: three architectures x three seeds of two epochs (the thesis: 30 epochs, 10 seeds).
        teacher=dict(arch="resnet_preact", epochs=2, train_subset=None, val_size=5000,
                     batch_size=64, lr=2e-3, patience=3,
                     study_archs=("resnet_preact", "simple_cnn", "compressed_cnn"), study_seeds=(0, 1, 2)),
        diffusion=dict(base=16, mults=(1, 2, 4), attention=False, T=1000, beta_start=1e-4,
                       beta_end=0.02, steps=3000, batch_size=128, lr=2e-3, p_uncond=0.1,
                       ema_decay=0.999, train_subset=None,
                       # the thesis' epochs 1, 3, 7, 25, 45, 65, 85, 100 of 100, scaled to 3,000 steps
                       milestones=(30, 90, 210, 750, 1350, 1950, 2550, 3000)),
        # w = 1 (plain conditional): one network pass per step, and more diverse digits
        # than w = 2, which the student needs (measured: benchmarks/sweep_levers.py).
        # knob_steps: the thesis' ancestral chain respaced to 100 steps for the knob study.
        generation=dict(sampler="ddim", num_steps=20, guidance_w=1.0, clip_x0=True,
                        x_T_scale=1.0, noise_scale=1.0, batch_size=500, demo_per_class=1,
                        knob_steps=100, knob_per_class=20),
        synth=dict(per_class=2000, threshold=0.9, threshold_floor=0.5, max_rounds=50,
                   label_mode="teacher", mode="balanced", oversample=1.2),
        # Three seeds of the main student (a mean with an interval), 3 epochs each: with the
        # experiments of chapters 5-7 the whole book takes 46 min on 2 cores (bf16, results/cpu).
        student=dict(arch="resnet_preact", epochs=3, batch_size=64, lr=2e-3, patience=3,
                     val_fraction=0.1, soft=True, temperature=4.0, alpha=0.5, augment=True,
                     seeds=(0, 1, 2)),
        # The other students of the grid (3 architectures x hard / soft tau=1 / soft tau=4) get
        # two seeds; degradation: one student per architecture on 200 digits/class from each of
        # six checkpoints (1350 is there so that one student lands near the thesis' ~85% early
        # student: at 750 and 1950 steps the ResNet measured 48% and 96%), 6 epochs; ablation:
        # ResNet students on a 300/class subset of the synthetic set.
        experiments=dict(grid_archs=("resnet_preact", "simple_cnn", "compressed_cnn"),
                         grid_labels=("hard", "soft_t1", "soft_t4"), grid_seeds=(0, 1),
                         degradation_milestones=(90, 210, 750, 1350, 1950, 3000), degradation_per_class=200,
                         degradation_epochs=6,
                         ablation_per_class=300, ablation_seeds=(0, 1), thesis_per_class=100),
        # Theory chapters (book/theory): all eight together in about 4 minutes on 2 cores.
        theory=dict(toy_steps=4000, toy_hidden=128, toy_samples=2000, classifier_steps=2000,
                    ae_T=50, ae_hidden=128, ae_shared_hidden=1024, ae_steps=400, ae_shared_steps=3000,
                    ae_batch=64, ae_samples=500, recon_digits=10, recon_fallback_steps=1500),
    ),
    "gpu": dict(
        seed=0, test_subset=None, cell_timeout_s=3600,
        teacher=dict(arch="resnet_preact", epochs=8, train_subset=None, val_size=5000,
                     batch_size=128, lr=2e-3, patience=3,
                     study_archs=("resnet_preact", "simple_cnn", "compressed_cnn"), study_seeds=tuple(range(10))),
        diffusion=dict(base=32, mults=(1, 2, 4), attention=True, T=1000, beta_start=1e-4,
                       beta_end=0.02, steps=4000, batch_size=256, lr=1e-3, p_uncond=0.1,
                       ema_decay=0.999, train_subset=None,
                       milestones=(40, 120, 280, 1000, 1800, 2600, 3400, 4000)),
        generation=dict(sampler="ddim", num_steps=25, guidance_w=1.0, clip_x0=True,
                        x_T_scale=1.0, noise_scale=1.0, batch_size=3000, demo_per_class=8,
                        knob_steps=1000, knob_per_class=100),
        synth=dict(per_class=6000, threshold=0.9, threshold_floor=0.5, max_rounds=50,
                   label_mode="teacher", mode="balanced", oversample=1.2),
        student=dict(arch="resnet_preact", epochs=6, batch_size=128, lr=2e-3, patience=3,
                     val_fraction=0.1, soft=True, temperature=4.0, alpha=0.5, augment=True,
                     seeds=tuple(range(10))),
        experiments=dict(grid_archs=("resnet_preact", "simple_cnn", "compressed_cnn"),
                         grid_labels=("hard", "soft_t1", "soft_t4"), grid_seeds=(0, 1, 2),
                         degradation_milestones=(120, 280, 1000, 1800, 2600, 3400, 4000),
                         degradation_per_class=1000, degradation_epochs=10, ablation_per_class=2000, ablation_seeds=(0, 1, 2),
                         thesis_per_class=100),
        theory=dict(toy_steps=8000, toy_hidden=256, toy_samples=5000, classifier_steps=4000,
                    ae_T=100, ae_hidden=512, ae_shared_hidden=1700, ae_steps=2000, ae_shared_steps=10000,
                    ae_batch=128, ae_samples=2000, recon_digits=20, recon_fallback_steps=3000),
    ),
}



def _derive(base: str, **changes) -> dict:
    """A profile that is ``base`` with some keys of some sections changed."""
    out = copy.deepcopy(PROFILES[base])
    for section, values in changes.items():
        if isinstance(out.get(section), dict):
            out[section].update(values)
        else:
            out[section] = values
    return out


# t4: the gpu profile's generator, synthetic set and main-student recipe (so its main student
# matches the gpu profile's, on 3 seeds instead of 10), with the studies around them cut to fit
# a free Colab T4 session (the whole book in about 45 min, an estimate: README, "Colab").
PROFILES["t4"] = _derive(
    "gpu",
    teacher={"study_seeds": (0, 1, 2)},
    generation={"knob_steps": 100, "knob_per_class": 20},
    student={"seeds": (0, 1, 2)},
    experiments={"grid_seeds": (0, 1), "degradation_milestones": (280, 1000, 1800, 4000),
                 "degradation_per_class": 300, "ablation_per_class": 500, "ablation_seeds": (0, 1)},
    theory=dict(PROFILES["cpu"]["theory"]),
)

DEFAULT_PROFILE = "auto"
PROFILE_ENV = "KR_PROFILE"
AUTO = "auto"
BIG_GPU_BYTES = 40 * 2 ** 30


def auto_profile() -> str:
    """``auto``: ``gpu`` on a data-centre GPU with native bf16 (compute capability >= 8.0 and at
    least 40 GiB: A100, H100, H200), ``t4`` on any other GPU (Colab's T4, a V100, an L4, a
    desktop card), ``cpu`` without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    major, _ = torch.cuda.get_device_capability(0)
    memory = torch.cuda.get_device_properties(0).total_memory
    return "gpu" if major >= 8 and memory >= BIG_GPU_BYTES else "t4"


class ConfigError(ValueError):
    """An impossible or unknown setting, reported before any work starts."""


def resolve_profile(profile: str | None) -> str:
    """The profile to use: the explicit one, else ``$KR_PROFILE``, else ``auto`` (gpu on CUDA,
    cpu otherwise: :func:`auto_profile`).

    Notebooks default their ``profile`` parameter to ``None`` so that papermill can set it
    and the test suite (nbval) can choose ``smoke`` through the environment.
    """
    name = profile or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name == AUTO:
        name = auto_profile()
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)} or {AUTO!r}")
    return name


def get_config(profile: str | None = None, **overrides) -> dict:
    """A validated copy of a profile's configuration.

    ``overrides`` use ``section__key`` names, e.g. ``synth__threshold=0.8``.
    """
    name = resolve_profile(profile)
    cfg = copy.deepcopy(PROFILES[name])
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, field = key.partition("__")
        if not field or section not in cfg or not isinstance(cfg[section], dict) or field not in cfg[section]:
            raise ConfigError(f"unknown override {key!r}; use section__key with a key of the profile")
        cfg[section][field] = value
    cfg["profile"] = name
    validate(cfg)
    return cfg


def _positive(cfg, section, *keys, allow_none=()):
    for k in keys:
        v = cfg[section][k]
        if v is None and k in allow_none:
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"{section}.{k} must be a positive number, got {v!r}")


def validate(cfg: dict) -> None:
    """Reject impossible values with a message naming the parameter."""
    if not isinstance(cfg["cell_timeout_s"], int) or cfg["cell_timeout_s"] <= 0:
        raise ConfigError(f"cell_timeout_s must be a positive number of seconds, got {cfg['cell_timeout_s']!r}")
    _positive(cfg, "teacher", "epochs", "batch_size", "lr", "patience", "val_size", "train_subset",
              allow_none=("train_subset",))
    _positive(cfg, "diffusion", "base", "T", "steps", "batch_size", "lr", "train_subset",
              allow_none=("train_subset",))
    _positive(cfg, "generation", "num_steps", "batch_size", "x_T_scale", "demo_per_class")
    _positive(cfg, "synth", "per_class", "max_rounds", "oversample")
    _positive(cfg, "student", "epochs", "batch_size", "lr", "patience", "temperature")
    _positive(cfg, "theory", *cfg["theory"])
    _positive(cfg, "generation", "knob_steps", "knob_per_class")
    _positive(cfg, "experiments", "degradation_per_class", "degradation_epochs", "ablation_per_class",
              "thesis_per_class")
    d, g, s, st = cfg["diffusion"], cfg["generation"], cfg["synth"], cfg["student"]
    if not 0 < d["beta_start"] < d["beta_end"] < 1:
        raise ConfigError(f"diffusion betas must satisfy 0 < beta_start < beta_end < 1, got "
                          f"{d['beta_start']}, {d['beta_end']}")
    if not 0 <= d["p_uncond"] < 1:
        raise ConfigError(f"diffusion.p_uncond must be in [0, 1), got {d['p_uncond']}")
    if not 0 <= d["ema_decay"] < 1:
        raise ConfigError(f"diffusion.ema_decay must be in [0, 1), got {d['ema_decay']}")
    if g["sampler"] not in ("ddim", "ancestral"):
        raise ConfigError(f"generation.sampler must be 'ddim' or 'ancestral', got {g['sampler']!r}")
    if g["num_steps"] > d["T"]:
        raise ConfigError(f"generation.num_steps={g['num_steps']} exceeds diffusion.T={d['T']}")
    if g["guidance_w"] < 0 or g["noise_scale"] < 0:
        raise ConfigError("generation.guidance_w and generation.noise_scale must be >= 0")
    if not 0 < s["threshold"] <= 1:
        raise ConfigError(f"synth.threshold must be in (0, 1], got {s['threshold']}")
    if not 0 < s["threshold_floor"] <= s["threshold"]:
        raise ConfigError(f"synth.threshold_floor must be in (0, threshold], got {s['threshold_floor']}")
    if s["label_mode"] not in ("teacher", "requested"):
        raise ConfigError(f"synth.label_mode must be 'teacher' or 'requested', got {s['label_mode']!r}")
    if s["mode"] not in ("balanced", "unconditional"):
        raise ConfigError(f"synth.mode must be 'balanced' or 'unconditional', got {s['mode']!r}")
    if not 0 < st["val_fraction"] < 1:
        raise ConfigError(f"student.val_fraction must be in (0, 1), got {st['val_fraction']}")
    if not 0 <= st["alpha"] <= 1:
        raise ConfigError(f"student.alpha must be in [0, 1], got {st['alpha']}")
    if round(s["per_class"] * 10 * st["val_fraction"]) < 10:
        raise ConfigError(f"synth.per_class={s['per_class']} is too small for a validation split "
                          f"of {st['val_fraction']} (fewer than 10 validation digits)")
    for arch_key in (cfg["teacher"]["arch"], st["arch"]):
        from .models import CLASSIFIERS
        if arch_key not in CLASSIFIERS:
            raise ConfigError(f"unknown classifier {arch_key!r}; expected one of {sorted(CLASSIFIERS)}")
    from .experiments import LABEL_SETTINGS
    e = cfg["experiments"]
    for arch_key in (*cfg["teacher"]["study_archs"], *e["grid_archs"]):
        if arch_key not in CLASSIFIERS:
            raise ConfigError(f"unknown classifier {arch_key!r}; expected one of {sorted(CLASSIFIERS)}")
    if cfg["teacher"]["arch"] not in cfg["teacher"]["study_archs"] or not cfg["teacher"]["study_seeds"]:
        raise ConfigError("teacher.study_archs must include teacher.arch, and teacher.study_seeds must not be empty")
    bad = set(e["grid_labels"]) - set(LABEL_SETTINGS)
    if bad:
        raise ConfigError(f"experiments.grid_labels: unknown {sorted(bad)}; expected names from {sorted(LABEL_SETTINGS)}")
    missing = set(e["degradation_milestones"]) - set(d["milestones"])
    if missing:
        raise ConfigError(f"experiments.degradation_milestones {sorted(missing)} are not diffusion.milestones "
                          f"{tuple(d['milestones'])}: no checkpoint is saved there")
    for k in ("ablation_per_class", "thesis_per_class"):
        if e[k] > s["per_class"]:
            raise ConfigError(f"experiments.{k}={e[k]} exceeds synth.per_class={s['per_class']}: the ablation "
                              f"draws its subsets from the synthetic set")
    if g["knob_steps"] > d["T"]:
        raise ConfigError(f"generation.knob_steps={g['knob_steps']} exceeds diffusion.T={d['T']}")
    if sorted(d["milestones"]) != list(d["milestones"]) or d["milestones"][-1] != d["steps"]:
        raise ConfigError(f"diffusion.milestones must be increasing and end at steps={d['steps']}, "
                          f"got {d['milestones']}")
