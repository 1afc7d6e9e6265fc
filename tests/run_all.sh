#!/usr/bin/env bash
# The test command: unit tests, then every notebook at the smoke profile twice (papermill, through
# the prepared GPU check at smoke, writes reference outputs; nbval re-runs and compares the cells
# marked NBVAL_CHECK_OUTPUT),
# then a -W book build of those executed notebooks (pipeline and theory chapters).
set -euo pipefail
cd "$(dirname "$0")/.."
export KR_PROFILE=smoke MPLBACKEND=Agg
export KR_HEADLESS=1   # no widget is ever built in a headless kernel (kr_utils.live)
# every notebook cell gets the smoke profile's cell timeout: a hang fails, naming the notebook and cell
cell_timeout=$(python -c "from kr_utils.config import get_config; print(get_config('smoke').cell_timeout_s)")
work=$(mktemp -d)
export KR_ARTIFACTS="$work/artifacts"   # never touch the user's artifacts/
trap 'rm -rf "$work"' EXIT

ruff check .   # the linter's rules: pyproject.toml [tool.ruff]
python -m pytest tests -q -p no:cacheprovider
# a simulated Colab runtime installs the committed checkout as a notebook's install cell does and
# runs the student chapter alone (tests/colab_sim.sh)
bash tests/colab_sim.sh "$work/colab_sim"
mkdir -p "$work/site"
cp -r _config.yml _toc.yml _static "$work/site/"
cp -r book "$work/site/book"
rm -rf "$work/site/book/pipeline" "$work/site/book/theory"/*.ipynb   # never a user's executed copies
# the prepared GPU check (make gpu-check) at smoke on this CPU: its CUDA tests skip here, its chapters
# are the book's smoke run (into site/book), then one replication at smoke; then its outputs are checked
python benchmarks/gpu_check.py --profile smoke --out "$work/gpu_check" --book-out "$work/site/book"
KR_GPU_CHECK_OUT="$work/gpu_check" python -m pytest tests/test_gpu_check.py -q -p no:cacheprovider -k outputs
# pipeline chapters 1-9 once more on Fashion-MNIST (the dataset parameter end to end; not rendered)
python -m kr_utils.book --profile smoke --dataset fashion-mnist --out "$work/fashion-mnist"
python -m pytest --nbval-lax --nbval-cell-timeout="$cell_timeout" -q -p no:cacheprovider "$work"/site/book/pipeline/*.ipynb "$work"/site/book/theory/*.ipynb
jupyter-book build "$work/site" -n -W --keep-going -q
# every formula of the built book typeset by MathJax itself (node, mathjax-full from the npm registry)
npm install --silent --no-audit --no-fund --prefix tests/mathcheck >/dev/null
node tests/mathcheck/check_math.js "$work/site/_build/html"
# every chapter page carries a Colab link to its notebook in the repository of _config.yml
KR_BUILT_SITE="$work/site/_build/html" python -m pytest tests/test_colab.py -q -p no:cacheprovider -k colab_link
# every glued figure must be an image in the HTML, not the text "<Figure size ...>"
if grep -rl "&lt;Figure size" "$work/site/_build/html/book"; then
    echo "figures rendered as text in the pages above" >&2; exit 1
fi
echo "tests passed"
