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
	$(PY) -m pytest -q

bench: venv
	$(PY) benchmarks/bench_digits.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
