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
