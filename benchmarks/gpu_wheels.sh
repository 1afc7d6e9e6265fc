#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels that a GPU box with PyTorch lacks to run the notebooks
# with papermill (it has torch, numpy, pandas, matplotlib, tqdm, pyyaml, requests, but no Jupyter
# stack). `myst_nb.glue` in a kernel needs myst-nb, docutils and IPython (ipykernel brings it),
# not Sphinx. Usage, from the project root:  bash benchmarks/gpu_wheels.sh [.whl]
# Then copy the folder along with the checkout (git-ignored): `make gpu-check` there installs them
# (benchmarks/gpu_check.py: pip install --no-index --no-deps --target <tmp> .whl/*.whl, on PYTHONPATH).
set -euo pipefail
dir=${1:-.whl}
mkdir -p "$dir"
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any)
python3 -m pip download -q "${plat[@]}" -d "$dir" papermill ipykernel
python3 -m pip download -q "${plat[@]}" --no-deps -d "$dir" myst-nb docutils
# already on such a box: leave them out
for p in attrs certifi charset_normalizer click coverage idna iniconfig jinja2 markdown_it_py markupsafe \
         mdurl packaging pluggy psutil pygments pytest python_dateutil pyyaml requests tabulate tqdm \
         typing_extensions urllib3 zipp six; do
  rm -f "$dir"/${p}-*.whl
done
ls "$dir" | wc -l | xargs echo "wheels:"; du -sh "$dir"
