"""Stage 0: run configuration. One frozen dataclass per pipeline stage, and a :class:`Profile`
that holds them (nanoGPT's one config object per run, passed whole). Every value is checked
when the object is built, and an impossible one raises :class:`ConfigError` naming the field
(``synth.threshold must be in (0, 1], got 1.5``) before any work starts.

Profiles (the raw values are the dictionaries of :data:`PROFILES`):

- ``smoke``: CI; every notebook in seconds, tiny models, numbers meaningless.
- ``cpu``: ``make book``'s default; the whole book, experiments included, on a 2-core machine
  with bf16 (about 1 h 50 min from scratch by its chapters' recorded costs, ``results/cpu/``:
  book/reproduce.md, "Profiles"), real results (smaller epochs, seeds and
  sizes than the thesis, stated per chapter).
- ``gpu``: thesis scale (60k synthetic digits), for a data-centre GPU (A100, H100).
- ``t4``: the gpu profile's pipeline with smaller studies around it, for a free Colab T4.
- ``auto`` (the notebooks' default) picks one of the last three by the device.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import ClassVar

from .profiles import DATASET_CHANGES, PROFILES, derive

# The classifier architectures of kr_utils.models (a test keeps the two lists equal) and the
# label settings of a student: hard labels, or the teacher's soft targets at temperature tau.
CLASSIFIER_NAMES = ("simple_cnn", "compressed_cnn", "resnet_preact")
LABEL_SETTINGS = {
    "hard": dict(soft=False),
    "soft_t1": dict(soft=True, temperature=1.0),
    "soft_t4": dict(soft=True, temperature=4.0),
}
LABEL_NAMES = {"hard": "hard labels", "soft_t1": "soft targets, τ=1", "soft_t4": "soft targets, τ=4"}


class ConfigError(ValueError):
    """An impossible or unknown setting, reported before any work starts."""


class _Stage:
    """What every stage config shares: its section name, checks that name the field, and a
    plain-dict view (tuples as lists) for checkpoints, cache keys and metrics."""

    section: ClassVar[str] = ""
    _tuples: ClassVar[tuple[str, ...]] = ()

    def _fail(self, name: str, must: str) -> None:
        raise ConfigError(f"{self.section}.{name} {must}, got {getattr(self, name)!r}")

    def _positive(self, *names: str, allow_none: tuple[str, ...] = ()) -> None:
        for name in names:
            v = getattr(self, name)
            if v is None and name in allow_none:
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                self._fail(name, "must be a positive number")

    def _in(self, name: str, low: float, high: float, closed: str = "[)") -> None:
        v = getattr(self, name)
        ok_low = v >= low if closed[0] == "[" else v > low
        ok_high = v <= high if closed[1] == "]" else v < high
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not (ok_low and ok_high):
            self._fail(name, f"must be in {closed[0]}{low:g}, {high:g}{closed[1]}")

    def _one_of(self, name: str, allowed) -> None:
        if getattr(self, name) not in allowed:
            self._fail(name, f"must be one of {sorted(allowed)}")

    def __post_init__(self):
        for name in self._tuples:  # lists from papermill or JSON become tuples: hashable, frozen
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        self.check()

    def check(self) -> None:  # pragma: no cover - every stage overrides it
        pass

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ClassifierRecipe(_Stage):
    """How one classifier is trained (:func:`kr_utils.distill.train_classifier`): a teacher on
    hard labels, or a student, with the teacher's soft targets at ``temperature`` mixed in by
    ``alpha`` (Hinton et al.) and random affine jitter with ``augment``."""

    section: ClassVar[str] = "classifier"
    arch: str
    epochs: int
    batch_size: int
    lr: float
    patience: int
    soft: bool = False
    temperature: float = 4.0
    alpha: float = 0.5
    augment: bool = False
    # the learning rate decays to 0 over the run (cosine, per batch); False keeps it constant, as
    # the thesis' Adam did (chapter 7's recipe)
    lr_decay: bool = True
    # fields added after recorded runs: left out of as_dict (cache keys, checkpoints) at their default,
    # so that the runs recorded before they existed keep their keys
    _late: ClassVar[dict] = {"lr_decay": True}

    def as_dict(self) -> dict:
        return {k: v for k, v in super().as_dict().items() if k not in self._late or v != self._late[k]}

    def check(self):
        self._one_of("arch", CLASSIFIER_NAMES)
        self._positive("epochs", "batch_size", "lr", "patience", "temperature")
        self._in("alpha", 0, 1, "[]")

    @property
    def labels(self) -> str:
        """The name in :data:`LABEL_SETTINGS` of this recipe's labels."""
        for name, setting in LABEL_SETTINGS.items():
            if all(getattr(self, k) == v for k, v in setting.items()):
                return name
        raise ConfigError(f"labels soft={self.soft}, temperature={self.temperature} match none of "
                          f"{sorted(LABEL_SETTINGS)}")

    def with_labels(self, labels: str, **changes) -> "ClassifierRecipe":
        """This recipe with another label setting of :data:`LABEL_SETTINGS` (and ``changes``)."""
        if labels not in LABEL_SETTINGS:
            raise ConfigError(f"unknown label setting {labels!r}; expected one of {sorted(LABEL_SETTINGS)}")
        return dataclasses.replace(self, **LABEL_SETTINGS[labels], **changes)


@dataclass(frozen=True)
class TeacherConfig(_Stage):
    """Chapter 1: the teacher trained on real MNIST, and the study of architectures x seeds."""

    section: ClassVar[str] = "teacher"
    _tuples: ClassVar[tuple[str, ...]] = ("study_archs", "study_seeds")
    arch: str
    epochs: int
    train_subset: int | None
    val_size: int
    batch_size: int
    lr: float
    patience: int
    study_archs: tuple[str, ...]
    study_seeds: tuple[int, ...]

    def check(self):
        self._one_of("arch", CLASSIFIER_NAMES)
        self._positive("epochs", "batch_size", "lr", "patience", "val_size", "train_subset",
                       allow_none=("train_subset",))
        for arch in self.study_archs:
            if arch not in CLASSIFIER_NAMES:
                self._fail("study_archs", f"must name classifiers of {sorted(CLASSIFIER_NAMES)}")
        if self.arch not in self.study_archs:
            self._fail("study_archs", f"must include teacher.arch={self.arch!r}")
        if not self.study_seeds:
            self._fail("study_seeds", "must not be empty")

    def recipe(self, arch: str | None = None) -> ClassifierRecipe:
        """The training recipe of a teacher (hard labels, no augmentation)."""
        return ClassifierRecipe(arch=arch or self.arch, epochs=self.epochs, batch_size=self.batch_size,
                                lr=self.lr, patience=self.patience)


@dataclass(frozen=True)
class DiffusionConfig(_Stage):
    """Chapter 2: the conditional U-Net, its noise schedule and its training."""

    section: ClassVar[str] = "diffusion"
    _tuples: ClassVar[tuple[str, ...]] = ("mults", "milestones")
    base: int
    mults: tuple[int, ...]
    attention: bool
    T: int
    beta_start: float
    beta_end: float
    steps: int
    batch_size: int
    lr: float
    p_uncond: float
    ema_decay: float
    train_subset: int | None
    milestones: tuple[int, ...]

    def check(self):
        self._positive("base", "T", "steps", "batch_size", "lr", "train_subset", allow_none=("train_subset",))
        if not (isinstance(self.beta_start, float) and isinstance(self.beta_end, float)
                and 0 < self.beta_start < self.beta_end < 1):
            self._fail("beta_end", f"must satisfy 0 < beta_start < beta_end < 1 (beta_start={self.beta_start!r})")
        self._in("p_uncond", 0, 1)
        self._in("ema_decay", 0, 1)
        if list(self.milestones) != sorted(self.milestones) or not self.milestones or self.milestones[-1] != self.steps:
            self._fail("milestones", f"must be increasing and end at steps={self.steps}")

    def unet_args(self) -> dict:
        return {"base": self.base, "mults": self.mults, "attention": self.attention}


SAMPLERS = ("ddim", "ancestral", "dpmpp2m")


@dataclass(frozen=True)
class SamplerConfig(_Stage):
    """Chapters 3-4: how digits are drawn (:func:`kr_utils.diffusion.build_sampler`).

    ``eta`` is DDIM's stochasticity (0: deterministic; 1: the ancestral sampler's variance);
    ``noise_scale`` multiplies the noise added at each step, ``x_T_scale`` the starting noise.
    ``knob_*`` size chapter 3's study of these knobs; ``demo_per_class`` its mosaics."""

    section: ClassVar[str] = "sampler"
    sampler: str
    num_steps: int
    guidance_w: float
    clip_x0: bool
    x_T_scale: float
    noise_scale: float
    batch_size: int
    demo_per_class: int
    knob_steps: int
    knob_per_class: int
    eta: float = 0.0

    def check(self):
        self._one_of("sampler", SAMPLERS)
        self._positive("num_steps", "batch_size", "x_T_scale", "demo_per_class", "knob_steps", "knob_per_class")
        for name in ("guidance_w", "noise_scale", "eta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                self._fail(name, "must be a number >= 0")


@dataclass(frozen=True)
class SynthConfig(_Stage):
    """Chapter 4: the labelled synthetic set (:func:`kr_utils.synth.build_synthetic_set`).

    ``shards``: the set made as this many shards (:func:`kr_utils.synth.build_shard`: each
    its own slice of every class quota and its own generator seed), merged class by class. It is
    the same set whether the shards are drawn side by side (worker processes, where the
    ``parallel_runs`` lever is on) or one after another; 1 is one draw, as before shards existed."""

    section: ClassVar[str] = "synth"
    per_class: int
    threshold: float
    threshold_floor: float
    max_rounds: int
    label_mode: str
    mode: str
    oversample: float
    shards: int = 1

    def check(self):
        self._positive("per_class", "max_rounds", "oversample", "shards")
        if not isinstance(self.shards, int):
            self._fail("shards", "must be a whole number of shards")
        if self.shards > self.per_class:
            self._fail("shards", f"must be at most per_class ({self.per_class}): each shard draws part of every class")
        self._in("threshold", 0, 1, "(]")
        self._in("threshold_floor", 0, self.threshold, "(]")
        self._one_of("label_mode", ("teacher", "requested"))
        self._one_of("mode", ("balanced", "unconditional"))
        if self.mode == "unconditional" and self.label_mode == "requested":
            self._fail("label_mode", "must be 'teacher' with mode='unconditional' (its digits have no class)")


@dataclass(frozen=True)
class StudentConfig(_Stage):
    """Chapter 5: the main student, trained on the synthetic set alone, over ``seeds``."""

    section: ClassVar[str] = "student"
    _tuples: ClassVar[tuple[str, ...]] = ("seeds",)
    arch: str
    epochs: int
    batch_size: int
    lr: float
    patience: int
    val_fraction: float
    soft: bool
    temperature: float
    alpha: float
    augment: bool
    seeds: tuple[int, ...]

    def check(self):
        self._one_of("arch", CLASSIFIER_NAMES)
        self._positive("epochs", "batch_size", "lr", "patience", "temperature")
        self._in("val_fraction", 0, 1, "()")
        self._in("alpha", 0, 1, "[]")
        if not self.seeds:
            self._fail("seeds", "must not be empty")
        self.recipe().labels  # noqa: B018 - a soft/temperature pair outside LABEL_SETTINGS is an error

    def recipe(self, arch: str | None = None, labels: str | None = None, **changes) -> ClassifierRecipe:
        """The training recipe of this student, or of one cell of chapter 5's grid (another
        ``arch`` and ``labels``; ``changes`` such as ``epochs`` or ``patience``)."""
        base = ClassifierRecipe(arch=arch or self.arch, epochs=self.epochs, batch_size=self.batch_size,
                                lr=self.lr, patience=self.patience, soft=self.soft,
                                temperature=self.temperature, alpha=self.alpha, augment=self.augment)
        return base.with_labels(labels, **changes) if labels else dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class StudiesConfig(_Stage):
    """Chapters 5-7: the student grid, the degradation study and the ablation."""

    section: ClassVar[str] = "studies"
    _tuples: ClassVar[tuple[str, ...]] = ("grid_archs", "grid_labels", "grid_seeds", "degradation_milestones",
                                          "ablation_seeds", "degradation_seeds", "degradation_epoch_choices",
                                          "grid_epoch_choices")
    grid_archs: tuple[str, ...]
    grid_labels: tuple[str, ...]
    grid_seeds: tuple[int, ...]
    degradation_milestones: tuple[int, ...]
    degradation_per_class: int
    degradation_kept: int
    degradation_epochs: int
    ablation_per_class: int
    ablation_seeds: tuple[int, ...]
    thesis_per_class: int
    # the epochs of the studies' students (chapter 5's grid, chapter 7's ablation); None: the main
    # student's (student.epochs), and then the grid's main cell is the main student itself
    epochs: int | None = None
    # chapter 7's thesis recipe: its students' epochs (None: the scripts' 80, kr_utils.thesis.RECIPE),
    # and the steps for which chapter 2's U-Net is trained on, once on [-3, 1] (the thesis' range)
    # and once more on [-1, 1] (the control)
    recipe_epochs: int | None = None
    recipe_unet_steps: int = 500
    # chapter 6: the seeds of each checkpoint's students, and the epochs each architecture may
    # train, chosen on the real validation digits (empty: degradation_epochs for all)
    degradation_seeds: tuple[int, ...] = (0,)
    degradation_epoch_choices: tuple[int, ...] = ()
    # chapter 5: the epochs each architecture of the grid may train, chosen on the real validation
    # digits (kr_utils.pipeline.grid_budget; empty: Profile.study_epochs for every architecture)
    grid_epoch_choices: tuple[int, ...] = ()

    def check(self):
        self._positive("degradation_per_class", "degradation_kept", "degradation_epochs", "ablation_per_class",
                       "thesis_per_class", "epochs", "recipe_epochs", "recipe_unet_steps",
                       allow_none=("epochs", "recipe_epochs"))
        if not self.degradation_seeds or any(not isinstance(n, int) or n < 1 for n in self.degradation_epoch_choices):
            self._fail("degradation_epoch_choices", "must be whole numbers of epochs, with at least one degradation seed")
        if any(not isinstance(n, int) or n < 1 for n in self.grid_epoch_choices):
            self._fail("grid_epoch_choices", "must be whole numbers of epochs")
        if self.ablation_per_class <= self.thesis_per_class:
            self._fail("ablation_per_class", f"must exceed studies.thesis_per_class={self.thesis_per_class}: it is "
                                             f"chapter 7's larger set")
        if self.epochs is not None and not isinstance(self.epochs, int):
            self._fail("epochs", "must be a whole number of epochs or None")
        if self.degradation_kept > 10 * self.degradation_per_class:
            self._fail("degradation_kept", f"must not exceed the {10 * self.degradation_per_class} digits generated "
                                           f"per checkpoint (10 x studies.degradation_per_class)")
        if set(self.grid_archs) - set(CLASSIFIER_NAMES):
            self._fail("grid_archs", f"must name classifiers of {sorted(CLASSIFIER_NAMES)}")
        bad = sorted(set(self.grid_labels) - set(LABEL_SETTINGS))
        if bad:
            raise ConfigError(f"studies.grid_labels: unknown {bad}; expected names from {sorted(LABEL_SETTINGS)}")


@dataclass(frozen=True)
class TheoryConfig(_Stage):
    """The theory chapters' sizes (toy models, per-step autoencoders, reconstructions)."""

    section: ClassVar[str] = "theory"
    toy_steps: int
    toy_hidden: int
    toy_samples: int
    classifier_steps: int
    ae_T: int
    ae_hidden: int
    ae_shared_hidden: int
    ae_steps: int
    ae_shared_steps: int
    ae_batch: int
    ae_samples: int
    recon_digits: int
    recon_fallback_steps: int
    t1_draws: int  # theory chapter 1's training draws per size of its learning curve

    def check(self):
        self._positive(*(f.name for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class GeneratorsConfig(_Stage):
    """Theory chapter 9 and chapter 11: the other generators of seed `004`
    (:mod:`kr_utils.generators`). GAN and WGAN-GP share a DCGAN generator of noise size
    ``latent`` and a projection critic, ``width`` channels; WGAN-GP makes ``n_critic`` critic
    updates per generator update with penalty weight ``gp_lambda``. The VAE is fully
    connected (``vae_hidden`` units, ``vae_latent`` dimensions, KL weight ``vae_beta``).
    ``*_steps``: generator updates of ``batch_size`` images in chapter 11; with
    ``equal_images`` every generator instead makes as many updates as show it the U-Net's
    training images (``diffusion.steps`` x ``diffusion.batch_size``, :func:`kr_utils.replication.steps`).
    ``theory_steps``: those of chapter 9's unconditional GAN against WGAN-GP, ``latent2d_steps``
    its 2-D autoencoders. ``per_class``: images per class of each generator's filtered set in
    chapter 11 (the diffusion model's set is cut to the same size). ``seeds``: chapter 11's
    training seeds of each generator, each with its own set and one student of the same seed
    (one generator seed: the main student's seeds on its set)."""

    section: ClassVar[str] = "generators"
    _tuples: ClassVar[tuple[str, ...]] = ("seeds",)
    latent: int
    width: int
    batch_size: int
    gan_lr: float
    wgan_lr: float
    n_critic: int
    gp_lambda: float
    vae_latent: int
    vae_hidden: int
    vae_lr: float
    vae_beta: float
    vae_steps: int
    gan_steps: int
    wgan_steps: int
    theory_steps: int
    latent2d_steps: int
    per_class: int
    seeds: tuple[int, ...] = (0,)
    equal_images: bool = False

    def check(self):
        self._positive(*(f.name for f in dataclasses.fields(self) if f.name not in ("seeds", "equal_images")))
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds) or len(set(self.seeds)) < len(self.seeds):
            self._fail("seeds", "must be distinct whole numbers, at least one")
        for name in ("n_critic", "latent", "width", "vae_latent"):
            if not isinstance(getattr(self, name), int):
                self._fail(name, "must be an integer")


@dataclass(frozen=True)
class EvaluationConfig(_Stage):
    """Chapter 9: what the copy is worth (:mod:`kr_utils.audit`, :mod:`kr_utils.claims`).

    - ``ood_size``: Fashion-MNIST test images and noise images the fidelity is measured on;
    - ``audit_size``: synthetic digits whose nearest training digits are searched (None: all
      of them; the real test digits, the reference, are always all searched); ``knn_k``, ``fd_size``: the k of k-NN
      precision/recall and the size of the equal samples Fréchet distances compare;
    - ``pool_per_class``: unfiltered digits per class drawn for the threshold sweep, whose
      students learn from ``sweep_per_class`` digits per class at each of ``thresholds``
      (0: no filter) for ``sweep_epochs`` (None: as many updates as the main student makes on
      the whole set, :func:`kr_utils.claims.sweep_epochs`), over ``sweep_seeds``; the thesis' samplers feed the
      same students at the profile's threshold;
    - ``set_sizes``: the synthetic set sizes of the set-size curve (the full set is added),
      each beside as many real training digits, over ``seeds``."""

    section: ClassVar[str] = "evaluation"
    _tuples: ClassVar[tuple[str, ...]] = ("thresholds", "set_sizes", "seeds", "sweep_seeds")
    ood_size: int
    audit_size: int | None
    knn_k: int
    fd_size: int
    pool_per_class: int
    thresholds: tuple[float, ...]
    sweep_per_class: int
    sweep_epochs: int | None
    sweep_seeds: tuple[int, ...]
    set_sizes: tuple[int, ...]
    seeds: tuple[int, ...]

    def check(self):
        self._positive("ood_size", "audit_size", "knn_k", "fd_size", "pool_per_class", "sweep_per_class",
                       "sweep_epochs", allow_none=("audit_size", "sweep_epochs"))
        if not self.thresholds or any(not isinstance(t, (int, float)) or not 0 <= t < 1 for t in self.thresholds):
            self._fail("thresholds", "must be numbers in [0, 1)")
        if list(self.thresholds) != sorted(set(self.thresholds)):
            self._fail("thresholds", "must be increasing")
        if not self.set_sizes or any(not isinstance(n, int) or n < 20 for n in self.set_sizes):
            self._fail("set_sizes", "must be integers >= 20")
        for name in ("seeds", "sweep_seeds"):
            if not getattr(self, name):
                self._fail(name, "must not be empty")
        if self.sweep_per_class > self.pool_per_class:
            self._fail("sweep_per_class", f"must not exceed pool_per_class={self.pool_per_class}")


STAGES = {"teacher": TeacherConfig, "diffusion": DiffusionConfig, "sampler": SamplerConfig, "synth": SynthConfig,
          "student": StudentConfig, "studies": StudiesConfig, "theory": TheoryConfig,
          "evaluation": EvaluationConfig, "generators": GeneratorsConfig}


@dataclass(frozen=True)
class Profile:
    """One run's whole configuration: a stage config per section, the run's seed, the size of
    the real test subset (None: all 10,000) and the cell timeout of the book's runner.

    ``cell_timeout_s``: the longest any one notebook cell may run under the runner and nbval
    before the run fails naming the chapter and the cell (a hang never waits for hours).

    ``dataset``: the real data of the run (a name of :data:`kr_utils.data.DATASETS`); its
    image shape, classes and their names come from the data (:attr:`data`), and its artifacts
    live in a folder of their own (:attr:`run`)."""

    profile: str
    seed: int
    test_subset: int | None
    cell_timeout_s: int
    teacher: TeacherConfig
    diffusion: DiffusionConfig
    sampler: SamplerConfig
    synth: SynthConfig
    student: StudentConfig
    studies: StudiesConfig
    theory: TheoryConfig
    evaluation: EvaluationConfig
    generators: GeneratorsConfig
    dataset: str = "mnist"

    @property
    def run(self) -> str:
        """The name of this run's artifacts folder and metrics: the profile (``cpu``) for MNIST,
        ``<profile>-<dataset>`` (``cpu-fashion-mnist``) for another dataset, so that the two
        never mix."""
        return self.profile if self.dataset == "mnist" else f"{self.profile}-{self.dataset}"

    @property
    def data(self):
        """The :class:`kr_utils.data.DatasetInfo` of :attr:`dataset` (image shape, classes)."""
        from . import data

        return data.info(self.dataset)

    @property
    def study_epochs(self) -> int:
        """The epochs of the studies' students (chapter 5's grid, chapter 7's ablation):
        ``studies.epochs``, or the main student's ``student.epochs`` where that is None."""
        return self.student.epochs if self.studies.epochs is None else self.studies.epochs

    @property
    def num_classes(self) -> int:
        """The number of classes of :attr:`dataset` (its torchvision class names)."""
        from . import data

        return len(data.class_names(self.dataset))

    def __post_init__(self):
        from . import data

        if self.dataset not in data.DATASETS:
            raise ConfigError(f"dataset must be one of {sorted(data.DATASETS)}, got {self.dataset!r}")
        if not isinstance(self.cell_timeout_s, int) or self.cell_timeout_s <= 0:
            raise ConfigError(f"cell_timeout_s must be a positive number of seconds, got {self.cell_timeout_s!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        d, g, s, st, e = self.diffusion, self.sampler, self.synth, self.student, self.studies
        for name in ("num_steps", "knob_steps"):
            if getattr(g, name) > d.T:
                raise ConfigError(f"sampler.{name}={getattr(g, name)} exceeds diffusion.T={d.T}")
        if round(s.per_class * self.num_classes * st.val_fraction) < 10:
            raise ConfigError(f"synth.per_class={s.per_class} is too small for a validation split of "
                              f"student.val_fraction={st.val_fraction} (fewer than 10 validation digits)")
        missing = sorted(set(e.degradation_milestones) - set(d.milestones))
        if missing:
            raise ConfigError(f"studies.degradation_milestones {missing} are not diffusion.milestones "
                              f"{tuple(d.milestones)}: no checkpoint is saved there")
        full = s.per_class * self.num_classes
        if max(self.evaluation.set_sizes) >= full:
            raise ConfigError(f"evaluation.set_sizes {tuple(self.evaluation.set_sizes)} must stay below the full "
                              f"synthetic set of {full} items (synth.per_class x {self.num_classes} classes), which the curve adds itself")
        for name in ("ablation_per_class", "thesis_per_class"):
            if getattr(e, name) > s.per_class:
                raise ConfigError(f"studies.{name}={getattr(e, name)} exceeds synth.per_class={s.per_class}: "
                                  f"the ablation draws its subsets from the synthetic set")
        if self.generators.per_class > s.per_class:
            raise ConfigError(f"generators.per_class={self.generators.per_class} exceeds synth.per_class={s.per_class}: "
                              f"chapter 11 cuts the diffusion model's set to the generators' size")

    @classmethod
    def from_dict(cls, name: str, raw: dict, dataset: str = "mnist") -> "Profile":
        """Build and check a profile from raw values (a dict of :data:`PROFILES`) for ``dataset``."""
        stages = {}
        for section, stage in STAGES.items():
            values = raw.get(section)
            if not isinstance(values, dict):
                raise ConfigError(f"profile {name!r} has no section {section!r}")
            unknown = sorted(set(values) - {f.name for f in dataclasses.fields(stage)})
            if unknown:
                raise ConfigError(f"{section}: unknown keys {unknown}")
            try:
                stages[section] = stage(**values)
            except TypeError as err:  # a key the stage needs is missing
                raise ConfigError(f"{section}: {err}") from None
        top = {k: raw.get(k) for k in ("seed", "test_subset", "cell_timeout_s")}
        return cls(profile=name, **top, **stages, dataset=dataset)

    def replace(self, **overrides) -> "Profile":
        """This profile with ``section__key`` overrides (``synth__threshold=0.8``) or top-level
        ones (``seed=3``); None leaves a value as it is (a notebook parameter left unset)."""
        changes: dict[str, dict] = {}
        top = {}
        for key, value in overrides.items():
            if value is None:
                continue
            section, _, name = key.partition("__")
            if not name and section in ("seed", "test_subset", "cell_timeout_s"):
                top[section] = value
                continue
            stage = STAGES.get(section)
            if not name or stage is None or name not in {f.name for f in dataclasses.fields(stage)}:
                raise ConfigError(f"unknown override {key!r}; use section__key with a key of the profile "
                                  f"(sections {sorted(STAGES)})")
            changes.setdefault(section, {})[name] = value
        new = {s: dataclasses.replace(getattr(self, s), **c) for s, c in changes.items()}
        return dataclasses.replace(self, **top, **new)

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("profile", "dataset", "seed", "test_subset", "cell_timeout_s")}
        out.update({s: getattr(self, s).as_dict() for s in STAGES})
        return out


# ------------------------------------------------------------------------------ the profiles' values
# The tables themselves are data, in kr_utils/profiles.py; what each measured setting rests on is in
# book/decisions.csv (shown on the reproduce page).
DEFAULT_PROFILE = "auto"
PROFILE_ENV = "KR_PROFILE"
DATASET_ENV = "KR_DATASET"
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


def resolve_dataset(dataset: str | None) -> str:
    """The dataset to use: the explicit one, else ``$KR_DATASET``, else ``mnist``; an unknown
    name is a :class:`ConfigError` naming the known ones."""
    from . import data

    name = dataset or os.environ.get(DATASET_ENV) or "mnist"
    if name not in data.DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {sorted(data.DATASETS)}")
    return name


def get_config(profile: str | None = None, dataset: str | None = None, **overrides) -> Profile:
    """The checked :class:`Profile` of ``profile`` (see :func:`resolve_profile`) for ``dataset``
    (:func:`resolve_dataset`; its changes of :data:`DATASET_CHANGES` applied) with
    ``section__key`` overrides, e.g. ``synth__threshold=0.8`` (None values are ignored)."""
    name, dataset = resolve_profile(profile), resolve_dataset(dataset)
    raw = derive(name, **DATASET_CHANGES.get(dataset, {}).get(name, {}))
    return Profile.from_dict(name, raw, dataset).replace(**overrides)
