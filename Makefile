# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch is pinned first: this machine carries a CPU build of 2.13.0 on disk, and an
# unpinned resolve of peft/accelerate would pull a multi-GB CUDA build instead.
TORCH_PIN ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_PIN)" -e ".[test]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) examples/demo.py

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The scenarios of benchmarks/scenarios.py (inputs cached under bench-out/inputs, each run in
# its own dated folder); e.g. make bench BENCH_ARGS="--scenarios resnet-mem --methods rfau,finetune"
# One torch thread unless told otherwise: the models it trains are then the same on every run
# (two threads sum floats in another order and train another original).
BENCH_OUT ?= bench-out
BENCH_ARGS ?=
BENCH_THREADS ?= 1
bench: venv
	OMP_NUM_THREADS=$(BENCH_THREADS) $(PY) benchmarks/scenarios.py --out $(BENCH_OUT)/scenarios-$$(date +%Y%m%d-%H%M%S) --cache $(BENCH_OUT)/inputs $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_out .pytest_cache
