import numpy as np
import pytest
import torch

from kr_utils import evaluate


def test_summarize_seeds_t_interval():
    s = evaluate.summarize_seeds([0.990, 0.992, 0.994])
    assert s["mean"] == pytest.approx(0.992) and s["std"] == pytest.approx(0.002)
    half = 4.302652729911275 * 0.002 / np.sqrt(3)  # t_{0.975, 2}
    assert s["ci95"] == pytest.approx([0.992 - half, 0.992 + half])
    one = evaluate.summarize_seeds([0.5])
    assert one["std"] is None and one["ci95"] is None


def test_classification_report_and_confusions():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 1])
    rep = evaluate.classification_report(torch.nn.functional.one_hot(pred, 10).float(), y)
    assert rep["accuracy"] == pytest.approx(4 / 6)
    assert rep["per_class_accuracy"][:3] == pytest.approx([0.5, 1.0, 0.5])
    assert rep["confusion_matrix"][0][1] == 1 and rep["confusion_matrix"][2][1] == 1
    assert evaluate.top_confusions(rep["confusion_matrix"], 5) == [(2, 1, 1), (0, 1, 1)] or \
        sorted(evaluate.top_confusions(rep["confusion_matrix"], 5)) == [(0, 1, 1), (2, 1, 1)]


def test_error_analysis_and_its_mosaic():
    from kr_utils import plots
    labels = torch.tensor([0, 1, 2, 3])
    logits = torch.zeros(4, 10)
    logits[0, 0] = 5; logits[1, 1] = 5; logits[2, 7] = 9; logits[3, 5] = 2  # two mistakes, 2→7 the surest
    err = evaluate.error_analysis(logits, labels, worst=2, top=3)
    assert err["accuracy"] == 0.5 and err["worst"].tolist() == [2, 3]
    assert err["top_confusions"][0][:2] in ((2, 7), (3, 5)) and len(err["top_confusions"]) == 2
    fig = plots.error_mosaic(torch.zeros(4, 1, 28, 28), labels, logits, err["worst"])
    assert [ax.get_title() for ax in fig.axes][:2] == ["2→7 (1.00)", "3→5 (0.45)"]


def test_inference_ms_is_positive():
    from kr_utils import models
    assert evaluate.inference_ms(models.build_classifier("simple_cnn"), torch.zeros(50, 1, 28, 28), "cpu", n=50) > 0


def test_format_summary_lists_seeds_on_request():
    from kr_utils.evaluate import format_summary, summarize_seeds

    s = summarize_seeds([0.9, 0.1, 0.5])
    assert format_summary(s).startswith("50.00 ± 40.00% [")
    assert format_summary(s, seeds=True).endswith("(seeds: 90.00, 10.00, 50.00)")
    assert format_summary(summarize_seeds([0.5]), seeds=True) == "50.00% (1 seed)"
    # two seeds: a t interval of ± 12.7 std says nothing, so none is printed, only the seeds
    two = format_summary(summarize_seeds([0.9, 0.1]))
    assert two == "50.00% (2 seeds: 90.00, 10.00)" and "[" not in two


def test_seed_bars_draw_every_seed_and_count_heatmap_every_cell():
    import matplotlib
    matplotlib.use("Agg")
    from kr_utils import plots
    fig = plots.seed_bars({"a": [90.0, 10.0], "b": [95.0, 96.0, 97.0]}, reference_line=(94.3, "thesis"))
    ax = fig.axes[0]
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == 5 and len(ax.patches) == 2  # a point per seed: a collapsed seed shows
    assert [round(p.get_width(), 6) for p in ax.patches] == [50.0, 96.0]
    fig = plots.count_heatmap([[3, 0, 1] + [0] * 7, [0] * 9 + [4]], ["step 1", "step 2"], xlabel="label")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["1", "3", "4"]  # zeros left blank


def test_counted_is_singular_only_for_one():
    from kr_utils.evaluate import counted

    assert counted(1, "epoch") == "1 epoch"
    assert counted(3, "epoch") == "3 epochs"
    assert counted(0, "seed") == "0 seeds"
    assert counted(20000, "digit") == "20,000 digits"
    assert counted(2, "class", "classes") == "2 classes"
    assert counted(1, "class", "classes") == "1 class"


def test_ordering_sentence_says_when_seeds_do_not_rank():
    from kr_utils.evaluate import ordering_sentence, summarize_seeds
    s = {"a": summarize_seeds([0.99, 0.991, 0.992]), "b": summarize_seeds([0.98, 0.981, 0.982]),
         "c": summarize_seeds([0.90, 0.91, 0.92])}
    assert ordering_sentence(s, ["a", "b", "c"]).startswith("the same ordering here, each neighbour apart")
    assert ordering_sentence(s, ["b", "a", "c"]).startswith("here the ordering is a, then b, then c")
    s["b"] = summarize_seeds([0.97, 0.99, 0.995])
    assert "of a and b overlap" in ordering_sentence(s, ["a", "b", "c"])
    assert "overlap" in ordering_sentence({"a": summarize_seeds([0.9]), "b": summarize_seeds([0.8])}, ["a", "b"])


def test_format_interval_covers_seeds_and_digits_and_lists_each_seed():
    """Two runs on 4 digits, right on 4 and on 2: mean 0.75; the interval is
    kr_utils.comparison.accuracy_interval's (seeds' and digits' variance), and each seed is printed."""
    from kr_utils import comparison

    y = torch.tensor([0, 1, 0, 1])
    right = torch.nn.functional.one_hot(y, 2).float()
    runs = {0: {"test_logits": right}, 1: {"test_logits": torch.cat([right[:2], right[2:].flip(1)])}}
    correct = evaluate.correct_on(runs, y)
    assert correct.tolist() == [[True] * 4, [True, True, False, False]]
    _, lo, hi = comparison.accuracy_interval(correct)
    assert evaluate.format_interval(runs, y, 1) == f"75.0% [{100 * lo:.1f}, {100 * hi:.1f}] (seeds: 100.0, 50.0)"
