#!/usr/bin/env bash
# The test command: unit tests, then every notebook at the smoke profile twice (papermill
# writes reference outputs, nbval re-runs and compares the cells marked NBVAL_CHECK_OUTPUT),
# then a -W book build of those executed notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
export KR_PROFILE=smoke MPLBACKEND=Agg
work=$(mktemp -d)
export KR_ARTIFACTS="$work/artifacts"   # never touch the user's artifacts/
trap 'rm -rf "$work"' EXIT

python -m pytest tests -q -p no:cacheprovider
python -m kr_utils.book --profile smoke --out "$work/executed"
python -m pytest --nbval-lax -q -p no:cacheprovider "$work"/executed/*.ipynb

mkdir -p "$work/site/book"
cp _config.yml _toc.yml "$work/site/"
cp -r book/intro.md book/reproduce.md book/theory "$work/site/book/"
cp -r "$work/executed" "$work/site/book/pipeline"
jupyter-book build "$work/site" -n -W --keep-going -q
echo "tests passed"
