#!/usr/bin/env bash
# A simulated Colab run (issue: Colab readers). A fresh virtual environment stands for a Colab
# runtime: its "preinstalled" torch, torchvision and numpy are those of the test environment
# (linked, not reinstalled, as Colab's own are there already), plus ipykernel to run a kernel.
# The project is installed only the way a notebook's own install cell does it (its URL swapped
# for git+file:// of this checkout's HEAD), then the student chapter runs alone at smoke with an
# empty artifacts folder. It must pass, and torch must not have been reinstalled.
#   usage: tests/colab_sim.sh WORKDIR
set -euo pipefail
cd "$(dirname "$0")/.."
work="$1"; mkdir -p "$work"
sim="$work/colab"
python -m venv "$sim"
site=$("$sim/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
pre="$work/colab_preinstalled"; mkdir -p "$pre"
src=$(python -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
for entry in "$src"/*; do
  case "$(basename "$entry")" in
    torch|torch-*|torchgen|functorch|torchvision|torchvision-*|torchvision.libs|numpy|numpy-*|numpy.libs|nvidia|nvidia_*|cuda|cuda_*|triton|triton-*|sympy|sympy-*|mpmath|mpmath-*|networkx|networkx-*|jinja2|jinja2-*|markupsafe|markupsafe-*|filelock|filelock-*|fsspec|fsspec-*|typing_extensions*|PIL|pillow-*|pillow.libs)
      ln -s "$entry" "$pre/";;
  esac
done
echo "$pre" > "$site/colab_preinstalled.pth"
"$sim/bin/pip" install -qq --upgrade pip                  # Colab's pip is recent (23.x rejects git+file:///)
"$sim/bin/pip" install -qq ipykernel                      # Colab's kernel
"$sim/bin/python" -m ipykernel install --prefix "$sim" --name colab-sim >/dev/null
torch_before=$("$sim/bin/python" -c "import torch; print(torch.__file__)")

# the notebook as a Colab reader opens it: its install line pointing at this checkout, and
# google.colab importable (a stand-in module) so that the install cell runs
nb="$work/05_student_colab.ipynb"
python - "$nb" "git+file://$(pwd)@$(git rev-parse HEAD)" <<'PY'
import re, sys
import nbformat
from kr_utils import book
nb = nbformat.read("notebooks/05_student.ipynb", as_version=4)
first = next(c for c in nb.cells if c.cell_type == "code")
assert book.install_line() in first.source, "the install cell does not name _config.yml's repository"
first.source = re.sub(book.INSTALL_RE, lambda _: f'%pip install -q "kr_utils @ {sys.argv[2]}"', first.source)
fake = nbformat.v4.new_code_cell('import sys, types\nsys.modules.setdefault("google.colab", types.ModuleType("google.colab"))')
nb.cells.insert(0, fake)
nbformat.write(nb, sys.argv[1])
PY
JUPYTER_PATH="$sim/share/jupyter" KR_ARTIFACTS="$work/colab_artifacts" KR_PROFILE=smoke \
  papermill "$nb" "$work/05_student_colab.out.ipynb" -k colab-sim --cwd "$work" --no-progress-bar \
  --execution-timeout "$(python -c "from kr_utils.config import get_config; print(get_config('smoke').cell_timeout_s)")"
torch_after=$("$sim/bin/python" -c "import torch; print(torch.__file__)")
[ "$torch_before" = "$torch_after" ] || { echo "the install replaced Colab's torch: $torch_after" >&2; exit 1; }
"$sim/bin/python" -c "import myst_nb" 2>/dev/null && { echo "myst-nb is not a dependency: the run must use the glue fallback" >&2; exit 1; }
ls "$work/colab_artifacts/smoke/student.pt" >/dev/null
echo "simulated Colab run passed (torch kept at $torch_after)"
