"""The real test set only scores: no choice of the book (which cell, checkpoint, student,
setting to show or keep) is made on it (issue: experiments a reviewer would accept).

A static guard over the notebooks, the library and the benchmarks. Values are *tainted* when
they come from the test set: a call of ``data.test_tensors`` / ``load_mnist("test")``, a
function parameter named ``test``, a subscript with a key that holds a test score
(``"accuracy"``, ``"test_logits"``, ...), and, one assignment after another, anything computed
from a tainted value. A *choice* is ``min``/``max``/``sorted`` with a ``key=``, or
``argmax``/``argmin``/``idxmax``/``idxmin``/``nlargest``/``nsmallest`` over a whole array (not
along an axis: a prediction). A choice over tainted values
fails the test unless it names a validation score (a key or name with ``val`` in it), or its
line says ``# test-set report, not a choice`` (a reported fact, such as "the threshold with
the highest test mean", that nothing downstream uses).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("notebooks/*.py"), *ROOT.glob("notebooks/theory/*.py"), *ROOT.glob("kr_utils/**/*.py"),
                  *ROOT.glob("benchmarks/*.py")])
TEST_KEYS = {"accuracy", "test_accuracy", "real_test_acc", "test_logits", "per_class_accuracy", "confusion_matrix",
             "student_accuracy", "student_accuracy_seeds", "real_test"}
SOURCE_CALLS = {"test_tensors"}
CHOICE_WITH_KEY = {"min", "max", "sorted"}
CHOICE_CALLS = {"argmax", "argmin", "idxmax", "idxmin", "nlargest", "nsmallest"}
MODULES = {"np", "numpy", "torch"}
EXEMPT = "# test-set report, not a choice"


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_source(node, tainted: set[str]) -> bool:
    """Whether the expression ``node`` reads the test set or a tainted value."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id in tainted:
            return True
        if isinstance(n, ast.Call):
            fn = _name(n.func)
            if fn in SOURCE_CALLS:
                return True
            if fn in ("load_mnist", "split_tensors") and n.args and isinstance(n.args[0], ast.Constant) \
                    and n.args[0].value == "test":
                return True
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and n.slice.value in TEST_KEYS:
            return True
    return False


def _names_validation(node) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "val" in n.value:
            return True
        if isinstance(n, ast.Name) and "val" in n.id:
            return True
    return False


def _targets(target) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _is_choice(call: ast.Call) -> bool:
    fn = _name(call.func)
    if fn in CHOICE_WITH_KEY and isinstance(call.func, ast.Name):
        return any(k.arg == "key" for k in call.keywords)
    if fn in CHOICE_CALLS:
        on_module = isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) \
            and call.func.value.id in MODULES  # np.argmax(a, 1) against a.argmax(1)
        along_axis = any(k.arg in ("axis", "dim") for k in call.keywords) or len(call.args) > (1 if on_module else 0)
        return not along_axis
    return False


def choices_on_test_set(source: str) -> list[str]:
    """The choices made on test-set values in one file's source: ``["line: text"]``."""
    tree = ast.parse(source)
    lines = source.splitlines()
    tainted: set[str] = set()
    for fn in ast.walk(tree):  # a parameter called test (or test_*) carries the test set
        if isinstance(fn, (ast.FunctionDef, ast.Lambda)):
            tainted |= {a.arg for a in fn.args.args + fn.args.kwonlyargs if a.arg == "test" or a.arg.startswith("test_")}
    for _ in range(4):  # propagate through assignments until nothing new is tainted
        before = len(tainted)
        for n in ast.walk(tree):
            if isinstance(n, ast.Assign) and _is_source(n.value, tainted):
                for t in n.targets:
                    tainted |= set(_targets(t))
            elif isinstance(n, (ast.AugAssign, ast.AnnAssign)) and n.value is not None and _is_source(n.value, tainted):
                tainted |= set(_targets(n.target))
            elif isinstance(n, ast.For) and _is_source(n.iter, tainted):
                tainted |= set(_targets(n.target))
            elif isinstance(n, ast.comprehension) and _is_source(n.iter, tainted):
                tainted |= set(_targets(n.target))
        if len(tainted) == before:
            break
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and _is_choice(n) and _is_source(n, tainted) and not _names_validation(n):
            line = lines[n.lineno - 1]
            if EXEMPT not in line:
                found.append(f"{n.lineno}: {line.strip()}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_choice_is_made_on_the_test_set(path):
    found = choices_on_test_set(path.read_text())
    assert not found, f"{path.relative_to(ROOT)} chooses on test-set values (use the real or synthetic " \
                      f"validation digits): " + "; ".join(found)


@pytest.mark.parametrize("code, flagged", [
    # the choices the issue found, as they were written
    ("summary = {c: summarize_seeds([r['accuracy'] for r in rs]) for c, rs in runs.items()}\n"
     "best = max(summary, key=lambda c: summary[c]['mean'])", True),
    ("x_te, y_te = data.test_tensors(None)\nruns = train(x, test=(x_te, y_te))\n"
     "early = min(runs, key=lambda k: abs(runs[k]['score'] - 0.835))", True),
    ("def pick(students, test):\n    r = evaluate(students, test)\n    return np.argmax(r)", True),
    ("s = df['accuracy']\nbest = s.idxmax()", True),
    # the same made on validation digits, predictions along an axis, a number, a reported fact
    ("best = max(summary, key=lambda c: summary[c]['val_real_accuracy'])", False),
    ("x_te, y_te = data.test_tensors(None)\npred = model(x_te).argmax(1)", False),
    ("lo = max(0, min(r['accuracy'] for r in runs) - 5)", False),
    ("best = max(done, key=lambda t: done[t]['accuracy'])  # test-set report, not a choice", False),
])
def test_the_guard_finds_choices_on_the_test_set(code, flagged):
    assert bool(choices_on_test_set(code)) is flagged
