"""The profiles' values: one table per profile (``smoke``, ``cpu``, ``gpu``; ``t4`` derived from
``gpu``), and each other dataset's changes to them. Plain data: :mod:`kr_utils.config` turns a
table into a validated :class:`kr_utils.config.Profile`. Why a measured setting has its value
(the alternative tried, the metric, the figure, the date) is recorded in ``book/decisions.csv``,
not here."""
from __future__ import annotations

import copy

PROFILES: dict[str, dict] = {
    "smoke": dict(
        seed=0, test_subset=2000, cell_timeout_s=300,
        teacher=dict(arch="resnet_preact", epochs=1, train_subset=2000, val_size=500,
                     batch_size=64, lr=2e-3, patience=3, study_archs=("resnet_preact", "simple_cnn"),
                     study_seeds=(0, 1)),
        diffusion=dict(base=8, mults=(1, 2, 2), attention=False, T=1000, beta_start=1e-4,
                       beta_end=0.02, steps=30, batch_size=64, lr=2e-3, p_uncond=0.1,
                       ema_decay=0.9, train_subset=2000, milestones=(10, 30)),
        sampler=dict(sampler="ddim", num_steps=5, guidance_w=2.0, clip_x0=True,
                     x_T_scale=1.0, noise_scale=1.0, batch_size=100, demo_per_class=1,
                     knob_steps=5, knob_per_class=2),
        # An untrained generator makes noise the teacher calls "0" with low confidence:
        # only the requested label and a low threshold fill ten quotas in seconds.
        synth=dict(per_class=10, threshold=0.15, threshold_floor=0.1, max_rounds=50,
                   label_mode="requested", mode="balanced", oversample=2.0),
        student=dict(arch="resnet_preact", epochs=1, batch_size=64, lr=2e-3, patience=3,
                     val_fraction=0.1, soft=False, temperature=4.0, alpha=0.5, augment=False,
                     seeds=(0,)),
        studies=dict(grid_archs=("resnet_preact", "simple_cnn"), grid_labels=("hard", "soft_t4"),
                     grid_seeds=(0,), degradation_milestones=(10, 30), degradation_per_class=10,
                     degradation_kept=40, degradation_epochs=1, ablation_per_class=10, ablation_seeds=(0,), thesis_per_class=5,
                     recipe_epochs=2, recipe_unet_steps=4, grid_epoch_choices=(1, 2)),
        theory=dict(t1_draws=3, toy_steps=150, toy_hidden=64, toy_samples=300, classifier_steps=100,
                    ae_T=10, ae_hidden=16, ae_shared_hidden=64, ae_steps=20, ae_shared_steps=40,
                    ae_batch=32, ae_samples=20, recon_digits=2, recon_fallback_steps=30),
        # enough updates that each conditional generator draws its requested class (tests/test_generators.py)
        generators=dict(latent=32, width=16, batch_size=64, gan_lr=5e-4, wgan_lr=5e-4, n_critic=2, gp_lambda=10.0,
                        vae_latent=8, vae_hidden=128, vae_lr=2e-3, vae_beta=1.0, vae_steps=1500, gan_steps=1000,
                        wgan_steps=400, theory_steps=30, latent2d_steps=30, per_class=10),
        evaluation=dict(ood_size=200, audit_size=None, knn_k=3, fd_size=100, pool_per_class=10,
                        thresholds=(0.0, 0.1, 0.15), sweep_per_class=5, sweep_epochs=1, sweep_seeds=(0,),
                        set_sizes=(40,), seeds=(0,)),
    ),
    "cpu": dict(
        # a cell gets three hours: from scratch on 2 cores chapters 6 and 7 hold cells of over an hour
        # (book/decisions.csv, cpu_cell_timeout)
        seed=0, test_subset=None, cell_timeout_s=10800,
        # Teachers: three architectures x three seeds of two epochs (the thesis: 30 epochs, 10 seeds).
        teacher=dict(arch="resnet_preact", epochs=2, train_subset=None, val_size=5000,
                     batch_size=64, lr=2e-3, patience=3,
                     study_archs=("resnet_preact", "simple_cnn", "compressed_cnn"), study_seeds=(0, 1, 2)),
        diffusion=dict(base=16, mults=(1, 2, 4), attention=False, T=1000, beta_start=1e-4,
                       beta_end=0.02, steps=3000, batch_size=128, lr=2e-3, p_uncond=0.1,
                       ema_decay=0.999, train_subset=None,
                       # the thesis' epochs 1, 3, 7, 25, 45, 65, 85, 100 of 100 (chapter 2's figure) and
                       # its degradation checkpoints 8, 17, 35, 50, 65, 80, 100 (§4.4), scaled to 3,000 steps
                       milestones=(30, 90, 210, 240, 510, 750, 1050, 1350, 1500, 1950, 2400, 2550, 3000)),
        # w = 1 (plain conditional): one network pass per step (decision cpu_guidance_w); DDIM-20 kept
        # (cpu_sampler); knob_steps: the thesis' ancestral chain respaced to 100 steps for the knob study.
        # Decisions and what measured them: book/decisions.csv, shown on the reproduce page.
        sampler=dict(sampler="ddim", num_steps=20, guidance_w=1.0, clip_x0=True,
                     x_T_scale=1.0, noise_scale=1.0, batch_size=500, demo_per_class=1,
                     knob_steps=100, knob_per_class=20),
        synth=dict(per_class=2000, threshold=0.9, threshold_floor=0.5, max_rounds=50,
                   label_mode="teacher", mode="balanced", oversample=1.2),
        # Three seeds of the main student (a mean with an interval), 3 epochs each (decisions
        # cpu_student_epochs and cpu_student_epochs_split: book/decisions.csv).
        student=dict(arch="resnet_preact", epochs=3, batch_size=64, lr=2e-3, patience=3,
                     val_fraction=0.1, soft=True, temperature=4.0, alpha=0.5, augment=True,
                     seeds=(0, 1, 2)),
        # The other students of the grid (3 architectures x hard / soft tau=1 / soft tau=4) get
        # two seeds. Degradation (chapter 6): at six of the thesis' checkpoints (its epochs 8, 17,
        # 35, 50, 80 and 100 of 100, scaled), 150 digits/class drawn, an equal share of each
        # requested class of those the teacher accepts kept (900, or less where a class has
        # fewer), labelled by the requested class as the thesis' code did, three seeds a
        # checkpoint, each architecture's epochs chosen on the real validation digits, no early
        # stopping. Ablation (chapter 7): the thesis' recipe on 100/class, the larger set
        # 200/class, five seeds per variant.
        studies=dict(grid_archs=("resnet_preact", "simple_cnn", "compressed_cnn"),
                     grid_labels=("hard", "soft_t1", "soft_t4"), grid_seeds=(0, 1),
                     degradation_milestones=(240, 510, 1050, 1500, 2400, 3000), degradation_per_class=150,
                     degradation_kept=900, degradation_epochs=20, ablation_per_class=200, ablation_seeds=(0, 1, 2, 3, 4),
                     thesis_per_class=100, recipe_unet_steps=500, degradation_seeds=(0, 1, 2),
                     degradation_epoch_choices=(10, 20, 40, 80), grid_epoch_choices=(3, 6, 12)),
        # Theory chapters (book/theory); their times at each run: results/cpu (theory_wall_time_s).
        theory=dict(t1_draws=20, toy_steps=4000, toy_hidden=128, toy_samples=2000, classifier_steps=2000,
                    ae_T=50, ae_hidden=128, ae_shared_hidden=1024, ae_steps=400, ae_shared_steps=3000,
                    ae_batch=64, ae_samples=500, recon_digits=10, recon_fallback_steps=1500),
        # Theory chapter 9 and chapter 11 (the generators of seed 004). WGAN-GP's learning rate: decision
        # cpu_wgan_lr (book/decisions.csv); one of its updates costs 5 critic updates with the penalty's
        # second derivative.
        generators=dict(latent=64, width=32, batch_size=64, gan_lr=2e-4, wgan_lr=5e-4, n_critic=5, gp_lambda=10.0,
                        vae_latent=16, vae_hidden=512, vae_lr=1e-3, vae_beta=1.0, vae_steps=4000, gan_steps=3000,
                        wgan_steps=1000, theory_steps=600, latent2d_steps=1500, per_class=300,
                        seeds=(0, 1, 2), equal_images=True),
        # Chapter 9: every synthetic digit audited against the training digits; 300 unfiltered
        # digits per class for the threshold sweep, whose students learn from 100 per class with
        # the main student's updates (sweep_epochs None: kr_utils.claims.sweep_epochs) over 3
        # seeds, as do those of the thesis' sampler; the set-size curve at 1k, 3k and 10k digits,
        # synthetic and real.
        evaluation=dict(ood_size=500, audit_size=None, knn_k=3, fd_size=2000, pool_per_class=300,
                        thresholds=(0.0, 0.5, 0.8, 0.9, 0.95, 0.99), sweep_per_class=100, sweep_epochs=None,
                        sweep_seeds=(0, 1, 2), set_sizes=(1000, 3000, 10000), seeds=(0, 1, 2)),
    ),
    "gpu": dict(
        seed=0, test_subset=None, cell_timeout_s=3600,
        teacher=dict(arch="resnet_preact", epochs=8, train_subset=None, val_size=5000,
                     batch_size=128, lr=2e-3, patience=3,
                     study_archs=("resnet_preact", "simple_cnn", "compressed_cnn"), study_seeds=tuple(range(10))),
        diffusion=dict(base=32, mults=(1, 2, 4), attention=True, T=1000, beta_start=1e-4,
                       beta_end=0.02, steps=4000, batch_size=256, lr=1e-3, p_uncond=0.1,
                       ema_decay=0.999, train_subset=None,
                       milestones=(40, 120, 280, 320, 680, 1000, 1400, 1800, 2000, 2600, 3200, 3400, 4000)),
        sampler=dict(sampler="ddim", num_steps=25, guidance_w=1.0, clip_x0=True,
                     x_T_scale=1.0, noise_scale=1.0, batch_size=3000, demo_per_class=8,
                     knob_steps=1000, knob_per_class=100),
        synth=dict(per_class=6000, threshold=0.9, threshold_floor=0.5, max_rounds=50,
                   label_mode="teacher", mode="balanced", oversample=1.2),
        student=dict(arch="resnet_preact", epochs=6, batch_size=128, lr=2e-3, patience=3,
                     val_fraction=0.1, soft=True, temperature=4.0, alpha=0.5, augment=True,
                     seeds=tuple(range(10))),
        studies=dict(grid_archs=("resnet_preact", "simple_cnn", "compressed_cnn"),
                     grid_labels=("hard", "soft_t1", "soft_t4"), grid_seeds=(0, 1, 2),
                     degradation_milestones=(120, 320, 680, 1000, 1400, 2000, 2600, 3200, 4000),
                     degradation_per_class=1000, degradation_kept=5000, degradation_epochs=10, ablation_per_class=2000,
                     ablation_seeds=tuple(range(10)), thesis_per_class=100, recipe_unet_steps=4000,
                     degradation_seeds=(0, 1, 2), degradation_epoch_choices=(5, 10, 20)),
        theory=dict(t1_draws=50, toy_steps=8000, toy_hidden=256, toy_samples=5000, classifier_steps=4000,
                    ae_T=100, ae_hidden=1700, ae_shared_hidden=1700, ae_steps=2000, ae_shared_steps=10000,
                    ae_batch=128, ae_samples=1000, recon_digits=20, recon_fallback_steps=3000),
        generators=dict(latent=64, width=64, batch_size=128, gan_lr=2e-4, wgan_lr=5e-4, n_critic=5, gp_lambda=10.0,
                        vae_latent=16, vae_hidden=1024, vae_lr=1e-3, vae_beta=1.0, vae_steps=20000, gan_steps=20000,
                        wgan_steps=10000, theory_steps=5000, latent2d_steps=5000, per_class=2000,
                        seeds=(0, 1, 2), equal_images=True),
        evaluation=dict(ood_size=10000, audit_size=None, knn_k=3, fd_size=10000, pool_per_class=2000,
                        thresholds=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99), sweep_per_class=1000, sweep_epochs=None,
                        sweep_seeds=(0, 1, 2), set_sizes=(1000, 3000, 10000, 30000), seeds=(0, 1, 2)),
    ),
}


def derive(base: str, **changes) -> dict:
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
# a free Colab T4 session (its time estimated on book/reproduce.md, "Colab").
PROFILES["t4"] = derive(
    "gpu",
    teacher={"study_seeds": (0, 1, 2)},
    sampler={"knob_steps": 100, "knob_per_class": 20},
    student={"seeds": (0, 1, 2)},
    studies={"grid_seeds": (0, 1), "degradation_milestones": (320, 1000, 2000, 4000),
             "degradation_per_class": 300, "degradation_kept": 1500, "ablation_per_class": 500,
             "ablation_seeds": (0, 1, 2, 3, 4), "recipe_unet_steps": 1000},
    theory=dict(PROFILES["cpu"]["theory"]),
    evaluation={"pool_per_class": 300, "sweep_per_class": 100, "sweep_epochs": None,
                "set_sizes": (1000, 3000, 10000), "seeds": (0, 1)},
)

# Another dataset's changes to a profile, per profile (a section's keys, as in derive). The
# Fashion-MNIST part of the book (chapter 10) runs the pipeline once more: the same teacher, U-Net,
# set size and student recipe as MNIST (longer training at cpu), the set drawn with DPM-Solver++ in
# 10 steps (decisions fm_sampler_steps and cpu_sampler in book/decisions.csv; its time at each run:
# results/cpu), and a degradation summary at three checkpoints.
_FAST = {"sampler": "dpmpp2m", "num_steps": 10}
DATASET_CHANGES: dict[str, dict[str, dict]] = {
    "fashion-mnist": {
        "smoke": {"sampler": {"sampler": "dpmpp2m", "num_steps": 5}},
        # Each checkpoint draws enough for its kept set at the teacher's acceptance rate. The teacher's and
        # the student's epochs, the sampler's steps, the threshold and the shards: decisions fm_* in
        # book/decisions.csv (tried by hand on the real validation images, one or two seeds each).
        "cpu": {"sampler": _FAST, "teacher": {"epochs": 6}, "student": {"epochs": 12}, "synth": {"shards": 2},
                "studies": {"degradation_milestones": (510, 1500, 3000), "degradation_per_class": 400}},
        "gpu": {"sampler": _FAST, "studies": {"degradation_milestones": (680, 2000, 4000), "degradation_per_class": 2200}},
        "t4": {"sampler": _FAST, "studies": {"degradation_milestones": (1000, 2000, 4000), "degradation_per_class": 650}},
    },
}
