# The two commands of the README. Both create .venv on first use and install what they need.
PYTHON ?= python3
PROFILE ?= cpu
# mnist: the book. fashion-mnist: pipeline chapters 1-9 on Fashion-MNIST, into _build/fashion-mnist/
DATASET ?= mnist
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test gpu-check install-book install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install-book: $(BIN)/python
	$(BIN)/pip install -q -e ".[book]" -c constraints.txt

install-test: $(BIN)/python
	$(BIN)/pip install -q -e ".[test]" -c constraints.txt

# Run the pipeline notebooks with papermill at $(PROFILE), then build the HTML book.
book: install-book
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m kr_utils.book --profile $(PROFILE) --dataset $(DATASET) --build
	@echo "open _build/html/index.html"

# Unit tests, a simulated Colab run, then the notebooks at the smoke profile under nbval (tests/run_all.sh).
test: install-test
	PATH="$(abspath $(BIN)):$$PATH" bash tests/run_all.sh

# The prepared GPU check (benchmarks/gpu_check.py; book/reproduce.md, "On a GPU box"): on a GPU box with PyTorch,
# no venv; at PROFILE=smoke the same steps on this CPU, with the venv's python where there is one.
GPU_CHECK_OUT ?= $(if $(filter smoke,$(PROFILE)),_build/gpu_check,results/gpu)
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py --profile $(if $(filter smoke,$(PROFILE)),smoke,gpu) --out $(GPU_CHECK_OUT)

clean:
	rm -rf _build book/pipeline artifacts/smoke
