"""The library's stages stand in layers: each ``kr_utils`` module imports only modules below it
(book/reproduce.md's "one module per pipeline stage, each importing only those below it"). Read from
the source, function-level imports included, so that a cycle hidden in a function body (one
module importing the other inside a function to dodge the import-time loop) fails too."""
import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kr_utils"

# a few stages in the order the reproduce page gives them, bottom first: none may import one after it
ORDER = ("profiles", "runtime", "store", "data", "config", "models", "diffusion", "synth", "distill", "evaluate",
         "studies", "pipeline", "distributed", "book")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The ``kr_utils`` modules that the file at ``path`` imports anywhere in its body."""
    here = list(path.relative_to(PACKAGE).with_suffix("").parts)  # a relative import counts back from these
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level]
            elif node.module and node.module.split(".")[0] == "kr_utils":
                base = []
            else:
                continue
            mod = (node.module or "").split(".")
            if not node.level:
                mod = mod[1:]
            target = base + [m for m in mod if m]
            names = [".".join(target + [a.name]) for a in node.names] + [".".join(target)]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("kr_utils.")]
        found |= {n for n in names if n and n in modules}
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): imported(p, modules) for p in files if p.name != "__init__.py"}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``edges`` (module -> modules it imports) as a path, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_no_false_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_reader_sees_imports_inside_functions(tmp_path, monkeypatch):
    pkg = tmp_path / "kr_utils"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from . import high\n    from .high import g\n")
    (pkg / "high.py").write_text("import kr_utils.low\nfrom kr_utils import low\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert graph() == {"low": {"high"}, "high": {"low"}}
    assert find_cycle(graph()) in (["high", "low", "high"], ["low", "high", "low"])


def test_no_two_modules_of_kr_utils_import_each_other_in_a_loop():
    edges = graph()
    assert {"pipeline", "synth", "runtime", "workers"} <= set(edges)  # the reader found the package
    assert edges["pipeline"] >= {"synth", "studies"}  # ... and its imports
    cycle = find_cycle(edges)
    assert cycle is None, "kr_utils modules import each other in a loop: " + " -> ".join(cycle)


@pytest.mark.parametrize("i", range(len(ORDER)))
def test_a_stage_imports_no_stage_above_it(i):
    above = set(ORDER[i + 1:])
    assert not graph()[ORDER[i]] & above, f"{ORDER[i]} imports {sorted(graph()[ORDER[i]] & above)}, above it"


def test_import_kr_utils_is_light():
    """``import kr_utils`` loads its config, not the stages (they load when first used), and no
    plotting library; a stage is still reachable as an attribute."""
    import subprocess
    code = ("import sys, kr_utils; mods = sorted(m for m in sys.modules if m.startswith('kr_utils.')); "
            "print(mods, 'matplotlib' in sys.modules, kr_utils.studies.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, plotting, studies = out.rsplit(" ", 2)
    assert "kr_utils.studies" not in loaded and "kr_utils.diffusion" not in loaded, loaded
    assert plotting == "False" and studies.strip() == "kr_utils.studies"


MAX_PARAMETERS = 8  # a function that wants more takes a config or job object (RunJob, DigitSource, ...)


def parameter_count(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The parameters a caller may pass (``self`` and ``cls`` not counted; ``*args`` and
    ``**kwargs`` one each)."""
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args]
    n = len(names) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    return n - (names[:1] in (["self"], ["cls"]))


def test_no_function_takes_more_than_eight_parameters():
    wide = [f"{p.relative_to(PACKAGE)}:{fn.lineno} {fn.name} ({parameter_count(fn)})"
            for p in sorted(PACKAGE.rglob("*.py")) for fn in ast.walk(ast.parse(p.read_text()))
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and parameter_count(fn) > MAX_PARAMETERS]
    assert not wide, f"functions over {MAX_PARAMETERS} parameters: {wide}"
