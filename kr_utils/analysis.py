"""Stage: analysis, above the studies. Chapter 8's comparison of a run's ``metrics.json`` with the
thesis' own numbers (:mod:`kr_utils.thesis`), row by row, and the sentences chapters 4 and 10 read
from their measurements."""
from __future__ import annotations

import numpy as np

from . import thesis
from .evaluate import counted
from .synth import BLACK_BELOW


def pct(v) -> str:
    """A fraction as a percentage with two decimals; a dash where there is no value."""
    return "—" if v is None else f"{100 * v:.2f}%"


def degradation_frame(m: dict):
    """The degradation table of ``metrics.json`` ordered by the fraction of training (its JSON
    keys are sorted as text)."""
    import pandas as pd

    return pd.DataFrame(m["degradation"]["table"]).T.sort_values("fraction_of_training")


def thesis_comparison(m: dict, profile: str):
    """One row per number the thesis reports and this run measures: teachers, students, the
    synthetic set and its cost, the diffusion loss, the degradation endpoints, the early
    student and its largest confusion, the thesis' recipe on this book's generator."""
    import pandas as pd

    main_arch = m["student"]["arch"]
    deg = degradation_frame(m)
    deg_main = deg[main_arch].dropna()
    early, abl, syn = m["degradation"]["early_student"], m["ablation"]["variants"], m["synthetic_set"]
    share = lambda step: f"{100 * deg.loc[step, 'fraction_of_training']:.0f}%"  # noqa: E731
    rows = [(f"teacher {a}, real test", pct(thesis.TEACHERS[a]["accuracy"]), pct(v["test_accuracy"]["mean"]))
            for a, v in m["teacher"]["study"].items()]
    rows += [
        ("teacher used, real test", pct(thesis.TEACHER_USED), pct(m["teacher"]["test_accuracy"])),
        (f"student {main_arch}, real test (main recipe)", pct(thesis.STUDENT["accuracy"]),
         pct(m["student"]["test_accuracy"]["mean"])),
        ("seeds of that student", thesis.STUDENT["seeds"], m["student"]["test_accuracy"]["n"]),
    ]
    syn_val = m["student"].get("grid_synthetic_validation", {})
    rows += [(f"student {k.split('/')[0]}, synthetic digits (Table 7; here its synthetic validation)",
              pct(thesis.STUDENTS_ON_SYNTHETIC.get(k.split("/")[0])), pct(v))
             for k, v in syn_val.items() if k.endswith("/" + m["student"]["grid_main_labels"])] \
        if "grid_main_labels" in m["student"] else []
    rows += [(f"student {k}, real test", pct(thesis.STUDENTS_REAL_FINAL.get(k.split("/")[0])) if k.endswith("/hard")
              else "—", pct(v["mean"])) for k, v in m["student"]["grid"].items()]
    rows += [
        ("synthetic set size (the thesis' text)", f"{thesis.SYNTHETIC_SET_SIZE:,d}", f"{syn['size']:,d}"),
        ("synthetic set size (the thesis' code, main.py)", f"{10 * thesis.CODE['per_class']:,d}", f"{syn['size']:,d}"),
        ("synthetic set: generation time", f"{thesis.SYNTHETIC_SET_TIME_S / 3600:.1f} h",
         f"{syn['generation_time_s'] / 60:.1f} min"),
        ("synthetic set: digits per second", f"{thesis.SYNTHETIC_DIGITS_PER_S:.1f}", f"{syn['generated_per_s']:.1f}"),
        ("diffusion loss at the end of training",
         f"{thesis.DIFFUSION_FINAL_LOSS[0]}-{thesis.DIFFUSION_FINAL_LOSS[1]}", f"{m['diffusion']['final_loss']:.4f}"),
        ("degradation: earliest checkpoint", pct(thesis.DEGRADATION[main_arch][8]) + " (8% of training)",
         f"{pct(deg_main.iloc[0])} ({share(deg_main.index[0])} of training)"),
        ("degradation: best checkpoint", pct(thesis.DEGRADATION[main_arch][80]) + " (80%)",
         f"{pct(deg_main.max())} ({share(deg_main.idxmax())})"),
        ("degradation: final checkpoint", pct(thesis.DEGRADATION[main_arch][100]), pct(deg_main.iloc[-1])),
        ("early student of the error study", pct(thesis.EARLY_STUDENT_ACCURACY), pct(early["accuracy"])),
        ("its largest confusion", "{}→{} ({})".format(*thesis.EARLY_CONFUSIONS[0]),
         "{}→{} ({})".format(*early["top_confusions"][0]) if early["top_confusions"] else "none"),
        ("chapter 7: the thesis' recipe from its scripts, on this book's generator", pct(thesis.STUDENT["accuracy"]),
         pct(abl["thesis_recipe"]["accuracy"]["mean"])),
    ]
    return pd.DataFrame(rows, columns=["", f"thesis ({thesis.DEVICE})",
                                       f"this book ({profile}: {m['environment']['device']})"]).set_index("")


DATASET_ROWS = {"teacher": "teacher (real test)", "acceptance": "teacher's acceptance of generated images",
                "student": "student, mean over seeds (real test)", "gap": "teacher minus student"}
MNIST_SECTIONS = ("teacher", "synthetic_set", "student")


def dataset_comparison(mnist_metrics: dict, other: dict, other_name: str):
    """Chapter 10's table: the teacher, the teacher's acceptance of generated images at the
    configured threshold (:func:`accepted_at_threshold`, one measure for both), the
    student's mean and the gap, for MNIST (from a run's ``metrics.json``, when it holds chapters
    1-5) beside another dataset (``other``: the same four keys of :data:`DATASET_ROWS`), as
    fractions. Returns ``(table, mnist_gap)``, the MNIST column and gap left out (None) when the
    MNIST metrics lack those chapters."""
    import pandas as pd

    table = pd.DataFrame({other_name: [other[k] for k in DATASET_ROWS]}, index=list(DATASET_ROWS.values()))
    if not all(k in mnist_metrics for k in MNIST_SECTIONS):
        return table, None
    t, s = mnist_metrics["teacher"]["test_accuracy"], mnist_metrics["student"]["test_accuracy"]["mean"]
    table.insert(0, "MNIST", [t, accepted_at_threshold(mnist_metrics["synthetic_set"]), s, t - s])
    return table, t - s


def accepted_at_threshold(section: dict) -> float:
    """The share of every generated item whose teacher confidence reached the configured
    threshold (:func:`kr_utils.synth.threshold_report`'s measure, the one chapter 10 reports for
    Fashion-MNIST), from a ``synthetic_set`` metrics section: its own ``accepted_at_threshold``,
    or, in a record that predates it, its per-class table (``confidence_per_class``, attached
    by :func:`kr_utils.pipeline.analysis_metrics`), weighted by what each class generated."""
    if "accepted_at_threshold" in section:
        return section["accepted_at_threshold"]
    table = section.get("confidence_per_class")
    if table is None:
        raise KeyError("the synthetic_set section holds neither accepted_at_threshold nor its per-class table "
                       "(confidence_per_class): chapter 10 cannot set the two datasets' acceptance side by side")
    generated = np.asarray(table["generated"], dtype=float)
    return float(np.nansum(generated * np.asarray(table["frac_above_threshold"], dtype=float)) / generated.sum())


# Settings that may differ between the two datasets' runs at one profile (section, field, words).
RECIPE_FIELDS = (("teacher", "epochs", "teacher epochs"), ("student", "epochs", "student epochs"),
                 ("sampler", "sampler", "sampler"), ("sampler", "num_steps", "sampler steps"),
                 ("synth", "threshold", "confidence threshold"), ("student", "arch", "student architecture"),
                 ("diffusion", "steps", "U-Net steps"), ("synth", "per_class", "synthetic images per class"))


def recipe_differences(cfg, other, other_name: str = "MNIST") -> list[str]:
    """Where the run of ``cfg`` and that of ``other`` (two :class:`kr_utils.config.Profile` of one
    profile, two datasets) do not share a setting of :data:`RECIPE_FIELDS`, in words: e.g.
    'teacher epochs 6 (MNIST 2)'. Empty: the two share the recipe."""
    out = []
    for section, field, words in RECIPE_FIELDS:
        a, b = getattr(getattr(cfg, section), field), getattr(getattr(other, section), field)
        if a != b:
            out.append(f"{words} {a} ({other_name} {b})")
    return out


def threshold_note(met: dict, what: str = "images") -> str:
    """The sentence on how a set met its confidence threshold, from
    :func:`kr_utils.synth.threshold_report`: every kept item reached it, or the rounds that kept
    nothing lowered it, and how many kept ``what`` are below the configured threshold."""
    if met["final_threshold"] >= met["threshold"]:
        return f"Every kept {what[:-1] if what.endswith('s') else what} reached it."
    return (f"Its last rounds asked for a few {what} of the classes still short; a round that kept none lowered the "
            f"threshold by 0.01, down to {met['final_threshold']:.2f}: {met['kept_below_threshold']:,d} of the kept "
            f"{what} are below {met['threshold']}.")


def background_reading(real: float, synthetic: float) -> str:
    """Chapter 4's words for two :func:`kr_utils.synth.background_level` values: 'both black', or which is not."""
    black = {"real": real < BLACK_BELOW, "synthetic": synthetic < BLACK_BELOW}
    if all(black.values()):
        return "both black"
    grey = [k for k, b in black.items() if not b]
    return ("neither is black" if len(grey) == 2 else
            f"the {grey[0]} images' background is not black (at or above {BLACK_BELOW:g})")


def per_class_table(teacher_accuracy, seed_accuracy, names):
    """Per class (``names``), the teacher's test accuracy and the students' (``seed_accuracy``:
    seeds x classes): their mean, lowest and highest seed. A test-set report, not a choice."""
    import pandas as pd

    seed_accuracy = np.asarray(seed_accuracy)
    return pd.DataFrame({"teacher": teacher_accuracy, "student": seed_accuracy.mean(0),
                         "student, lowest seed": seed_accuracy.min(0), "student, highest seed": seed_accuracy.max(0)},
                        index=list(names))


def weakest_texts(table, seed_accuracy, hardest: str) -> dict:
    """Chapter 10's sentences on the students' weakest class (``table``: :func:`per_class_table`):
    whether it is each seed's weakest too, its accuracy beside the teacher's, and whether it is
    also the teacher's weakest class and ``hardest`` (the class whose generated images the
    teacher accepted least often): a coincidence of rankings, not a measured cause."""
    names = list(table.index)
    worst, t_worst = table["student"].idxmin(), table["teacher"].idxmin()
    worst_each = {names[int(i)] for i in np.asarray(seed_accuracy).argmin(1)}  # each seed's weakest class
    n = len(seed_accuracy)
    return {"fm_worst_each": f"the weakest class of each of its seeds ({counted(n, 'seed')})" if worst_each == {worst}
            else f"while the seeds' own weakest are {', '.join(sorted(worst_each))}",
            "fm_worst_class": f"{worst} ({100 * table.loc[worst, 'student']:.1f}%, teacher "
                              f"{100 * table.loc[worst, 'teacher']:.1f}%)",
            "fm_worst_verdict": "It is also the teacher's weakest class and the one whose generated images the teacher "
                                "accepted least often (the set still holds its quota of it, drawn from more tries): a "
                                "coincidence of three rankings, not a measured cause." if worst == t_worst == hardest else
                                f"The teacher's weakest class is {t_worst}, and the class whose generated images it "
                                f"accepted least often {hardest}."}
