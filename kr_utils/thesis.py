"""The thesis' own numbers (seed ``000``), quoted from its text with the section they come
from, so that every chapter can print them beside ours; and the recipe its code ran
(:data:`RECIPE`), each constant with the file, commit, line and text of the script it comes
from. Nothing here is computed."""

from __future__ import annotations

from dataclasses import dataclass, fields


# §4.1, Table 6 and the text under Figs. 9-10: 30 epochs, 10 seeds, real MNIST test set.
TEACHERS = {
    "resnet_preact": {"accuracy": 0.9941, "std": 0.0003, "val_loss": 0.018},
    "simple_cnn": {"accuracy": 0.9918, "std": 0.0005, "val_loss": 0.032},
    "compressed_cnn": {"accuracy": 0.9902, "std": 0.0006, "val_loss": 0.035},
}
TEACHER_USED = 0.9955  # §4.3.2: the teacher the student is compared with
# §4.3.2: ResNet PreAct student, 10 runs, real test set.
STUDENT = {"accuracy": 0.9431, "std": 0.0006, "ci95": (0.9427, 0.9435), "seeds": 10}
# §4.3.2, under Fig. 17: the student "arranca en torno al 89 %" at its first of 80 checkpoints.
STUDENT_FIRST_CHECKPOINT = 0.89
# §4.3 Table 7: the same students measured on *synthetic* test digits.
STUDENTS_ON_SYNTHETIC = {"simple_cnn": 0.9991, "compressed_cnn": 0.9988, "resnet_preact": 0.9993}
# §4.3.3 / §4.4: final real-test accuracy of each architecture's student (degradation study).
STUDENTS_REAL_FINAL = {"resnet_preact": 0.934, "compressed_cnn": 0.922, "simple_cnn": 0.909}
# §4.4: students on the synthetic set of each diffusion epoch (of 100), real test set.
DEGRADATION_EPOCHS = (8, 17, 35, 50, 65, 80, 100)
DEGRADATION = {  # only the endpoints and the peak are given in the text
    "resnet_preact": {8: 0.263, 80: 0.957, 100: 0.934},
    "compressed_cnn": {8: 0.221, 80: 0.917, 100: 0.922},
    "simple_cnn": {8: 0.373, 80: 0.931, 100: 0.909},
}
# §4.5: the early student (83-84%) and its largest confusions (true, predicted, count).
EARLY_STUDENT_ACCURACY = 0.835
EARLY_CONFUSIONS = [(1, 6, 419), (3, 5, 229), (7, 2, 152), (8, 5, 135)]
# §3.3.2: diffusion training; §5 / abstract: cost of the synthetic set.
DIFFUSION_EPOCHS = 100
DIFFUSION_FINAL_LOSS = (0.045, 0.050)
SYNTHETIC_SET_SIZE = 60000
SYNTHETIC_SET_TIME_S = 6 * 3600  # 60k digits, 1000 ancestral steps, batch 64, RTX 4070
SYNTHETIC_DIGITS_PER_S = SYNTHETIC_SET_SIZE / SYNTHETIC_SET_TIME_S
DEVICE = "NVIDIA RTX 4070"
# §3.3.4: the set was generated clipped, guide_w = 0.5 (w = 1.5 here), x_T scale 0.5, noise 0.5.
GENERATION = {"guidance_w": 1.5, "x_T_scale": 0.5, "noise_scale": 0.5, "clip_x0": True, "threshold": 0.9}

# ------------------------------------------------------------------------------- the recipe its code ran

# The thesis' experiment scripts were deleted in the repository's "Final commit" d968518; they
# are read at its parent (github.com/JoaquinBeas/TFG at eba245d). compare_mnist_vs_sitntetic.py
# is the synthetic-against-real comparison behind its student's 94.3%.
REPOSITORY = "JoaquinBeas/TFG"
SCRIPTS_COMMIT = "eba245d668c2d55d28e1494b2d02a31c101020c9"  # d968518^


@dataclass(frozen=True)
class Source:
    """Where a constant of :data:`RECIPE` comes from: ``path`` at ``commit``, line ``line``,
    whose text (stripped) is ``text``. ``tests/test_thesis_recipe.py`` reads the constant back
    from ``text`` and, where a copy of the repository is at hand, ``text`` from the file."""

    path: str
    line: int
    text: str
    commit: str = SCRIPTS_COMMIT


@dataclass(frozen=True)
class ThesisRecipe:
    """The thesis' recipe as its scripts ran it (not as its text describes it; where they
    differ, :data:`TEXT_SAYS`). Every field has its :data:`SOURCES` entry."""

    # the student (compare_mnist_vs_sitntetic.py, with src/train_mnist_model.py's trainer)
    student_arch: str = "resnet_preact"  # the teacher's ResNetPreAct-20, trained from scratch
    student_epochs: int = 80  # no early stopping: the loop calls train_epoch 80 times
    early_stopping: bool = False
    keeps: str = "last"  # the weights after epoch 80 are scored on the real test set
    student_lr: float = 1e-3  # Adam, constant (no scheduler, no weight decay)
    student_batch_size: int = 64
    labels: str = "requested"  # the class asked of the generator; the teacher only filters
    loss: str = "hard"  # nn.CrossEntropyLoss on those labels: no soft targets
    augment: bool = False
    split: float = 0.85  # synthetic set -> 85% train / 15% test, then train -> 85% / 15% val
    # the diffusion model (src/diffusion_models/diffusion_unet_conditional.py, src/train_diffussion_model.py)
    n_T: int = 400
    beta_start: float = 1e-4
    beta_end: float = 0.02
    p_uncond: float = 0.1
    unet_epochs: int = 120  # main.py (its generate_diffusion_reports.py: 100, the text's figure)
    unet_batch_size: int = 64  # main.py's DiffussionTrainer(..., batch_size=64, ...)
    value_low: float = -3.0  # Normalize(0.5, 0.5) in the loader, then data * 2 - 1 again: [-3, 1]
    # its sampler as the set was built (clipped mode): guide_w, ours w = 1 + guide_w
    guide_w: float = 0.5
    x_T_scale: float = 1.0
    noise_scale: float = 0.0  # the clipped mode adds no noise at any step
    clip_x0: bool = True
    force_black: bool = True  # every pixel below 0 set to -1 after the last step
    # the set (src/synthetic_dataset.py, main.py)
    threshold: float = 0.85  # the teacher's max softmax, lowered by 0.01 after a batch that kept nothing
    threshold_floor: float = 0.5
    set_batch: int = 200  # digits judged together: a batch that keeps none lowers the threshold
    per_class: int = 100  # main.py: generate_balanced_dataset(max_per_class=100)
    grey_storage: bool = True  # the [0, 1] digit un-normalised once more: background 127 of 255

    @property
    def guidance_w(self) -> float:
        """This book's w (eps = w eps_c + (1 - w) eps_u) of its code's (1 + guide_w) eps_c - guide_w eps_u."""
        return 1.0 + self.guide_w

    @property
    def train_fraction(self) -> float:
        """The share of the synthetic set the student learns from: two 85% splits."""
        return self.split * self.split


RECIPE = ThesisRecipe()
_CMP, _DIFF = "compare_mnist_vs_sitntetic.py", "src/diffusion_models/diffusion_unet_conditional.py"
SOURCES = {
    "student_arch": Source(_CMP, 52, "model_type = MNISTModelType.RESNET_PREACT"),
    "student_epochs": Source(_CMP, 18, "NUM_EPOCHS_SYN     = 80"),
    "early_stopping": Source(_CMP, 43, "trainer.train_epoch(epoch)"),
    "keeps": Source(_CMP, 86, "trainer_syn.model, trainer_eval.test_loader, trainer_eval.device"),
    "student_lr": Source(_CMP, 19, "LEARNING_RATE_SYN  = 1e-3"),
    "student_batch_size": Source(_CMP, 20, "BATCH_SIZE         = 64"),
    "labels": Source("src/synthetic_dataset.py", 145, "labels[idx_offset:idx_offset+take] = cls"),
    "loss": Source("src/train_mnist_model.py", 86, "self.criterion = nn.CrossEntropyLoss()"),
    "augment": Source("src/utils/data_loader.py", 56, "full_ds = TensorDataset(imgs_t, lbls_t)"),
    "split": Source("src/utils/data_loader.py", 60, "train_len = int(0.85 * total)"),
    "n_T": Source(_DIFF, 17, "def __init__(self, nn_model = ContextUnet(in_channels=1, n_feat=256, "
                             "n_classes=MNIST_N_CLASSES), betas = (1e-4, 0.02), n_T= 400, device= DEVICE, "
                             "drop_prob= 0.1, num_classes = MNIST_N_CLASSES):"),
    "value_low": Source("src/train_diffussion_model.py", 80, "data = data * 2.0 - 1.0"),
    "unet_epochs": Source("main.py", 150, "trainer = DiffussionTrainer(model_type=diff_type, num_epochs=120,"),
    "unet_batch_size": Source("main.py", 151, "learning_rate=0.001, batch_size=64,"),
    "guide_w": Source("src/synthetic_dataset.py", 155, "guide_w=0.5"),
    "x_T_scale": Source(_DIFF, 112, "x_t_scale: float = 1.0,"),
    "noise_scale": Source(_DIFF, 151, "noise = torch.zeros_like(x)"),
    "clip_x0": Source(_DIFF, 164, "x0_pred = x0_pred.clamp(-1.0, 1.0)"),
    "force_black": Source(_DIFF, 184, "x = torch.where(x < 0.0,"),
    "threshold": Source("src/synthetic_dataset.py", 102, "confidence_threshold: float = 0.85"),
    "threshold_floor": Source("src/synthetic_dataset.py", 186, "thr_frac = max(thr_frac - 0.01, 0.5)"),
    "set_batch": Source("src/synthetic_dataset.py", 100, "batch_size: int = 200,"),
    "per_class": Source("main.py", 163, "SyntheticDataset(diffusion_model, mnist_model)."
                                        "generate_balanced_dataset(max_per_class=100)"),
    "grey_storage": Source("src/synthetic_dataset.py", 174, "arr = ((img * std_cpu + mean_cpu).squeeze(0)"),
}
SOURCES["beta_start"] = SOURCES["beta_end"] = SOURCES["p_uncond"] = SOURCES["n_T"]
assert set(SOURCES) == {f.name for f in fields(ThesisRecipe)}, "every constant of the recipe has its source"

# Where the thesis' text says otherwise (line numbers of the seed text 000):
TEXT_SAYS = {
    "n_T": "1,000 noise steps (lines 213, 729): 1,000 is its unconditional model's T",
    "noise_scale": "x_T and per-step noise at 0.5 (line 429); the clipped mode adds none, and x_T is at 1",
    "labels": "the teacher says which digit it sees (line 433); the code stores the requested class",
    "loss": "soft targets, the teacher's probabilities (lines 381, 725); the code uses hard labels",
    "threshold": "confidence 0.9 (lines 429, 433, 587, 715, 727); the code's default is 0.85",
    "per_class": "60,000 digits, 6,000 per class (lines 437, 567, 587); main.py caps at 100 per class, and "
                 "the comparison script reads generated_datasets/last_model, a folder no committed script writes",
    "unet_epochs": "100 epochs (its figures' 'época 100'); main.py trains 120",
    "student_epochs": "the script's own docstring says 30 epochs; its loop runs NUM_EPOCHS_SYN = 80",
}

# The sampler the set was built with, and main.py's students (20 epochs, MNIST_PATIENCE = 6, last_model.pt):
# what chapters 3, 7 and 9 put back. Its sampler's values are the recipe's.
CODE = {"steps": RECIPE.n_T, "guidance_w": RECIPE.guidance_w, "noise_scale": RECIPE.noise_scale,
        "clip_x0": RECIPE.clip_x0, "threshold": RECIPE.threshold, "per_class": RECIPE.per_class,
        "patience": 6, "max_epochs": 20, "keeps": "last weights"}
