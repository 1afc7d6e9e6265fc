"""The thesis' own numbers (seed ``000``), quoted from its text with the section they come
from, so that every chapter can print them beside ours. Nothing here is computed."""

# §4.1, Table 6 and the text under Figs. 9-10: 30 epochs, 10 seeds, real MNIST test set.
TEACHERS = {
    "resnet_preact": {"accuracy": 0.9941, "std": 0.0003, "val_loss": 0.018},
    "simple_cnn": {"accuracy": 0.9918, "std": 0.0005, "val_loss": 0.032},
    "compressed_cnn": {"accuracy": 0.9902, "std": 0.0006, "val_loss": 0.035},
}
TEACHER_USED = 0.9955  # §4.3.2: the teacher the student is compared with
# §4.3.2: ResNet PreAct student, 10 runs, real test set.
STUDENT = {"accuracy": 0.9431, "std": 0.0006, "ci95": (0.9427, 0.9435), "seeds": 10}
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

# What its code (github.com/JoaquinBeas/TFG, main.py and src/) did where the text says otherwise:
# main.py built the set with generate_balanced_dataset(max_per_class=100), threshold 0.85; the
# conditional model's sampling(guide_w=0.5) in its default clipped mode runs its n_T = 400 steps
# with two network passes a step, no per-step noise, x0_pred clamped to [-1, 1], and forces
# every negative pixel to black before storing (then normalises to [0, 1] twice: the grey
# background); the students trained with MNIST_PATIENCE = 6 and kept last_model.pt.
CODE = {"steps": 400, "guidance_w": 1.5, "noise_scale": 0.0, "clip_x0": True, "threshold": 0.85,
        "per_class": 100, "patience": 6, "max_epochs": 70, "keeps": "last weights"}
