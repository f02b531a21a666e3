# The README's two commands: `make demo` (install + main job) and `make test` (install + tests).
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build on the project's machines; on a GPU machine use e.g. TORCH_SPEC="torch==2.11.*"
# with the matching CUDA index, before `make install`.
TORCH_SPEC ?= torch==2.13.0
RUNS ?= runs/demo
# FFCV builds from source against OpenCV and libjpeg-turbo: whether they are present is part of
# the install stamp, so `make system-deps` followed by `make test` adds FFCV.
FFCV_DEPS := $(shell pkg-config --exists libturbojpeg 2>/dev/null && (pkg-config --exists opencv4 2>/dev/null || pkg-config --exists opencv 2>/dev/null) && echo yes || echo no)

.PHONY: install install-test system-deps demo lint test test-fast bench clean

# What `make demo` needs: fastkd, torch (CPU build), faiss-cpu. No DALI (a ~590 MB CUDA wheel).
install: $(VENV)/.installed-core

$(VENV)/.installed-core: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[faiss-cpu]"
	touch $@

# What `make test` needs on top: pytest, ruff, Ray (the study executor's tests run a local
# cluster), DALI (its tests run in DALI's CPU mode), FFCV when its system libraries are there
# (else its tests skip and say how to add it).
install-test: $(VENV)/.installed-test-ffcv-$(FFCV_DEPS)

$(VENV)/.installed-test-ffcv-$(FFCV_DEPS): $(VENV)/.installed-core
	$(PY) -m pip install -q -e ".[test,faiss-cpu,dali]"
	if [ "$(FFCV_DEPS)" = yes ]; then $(PY) -m pip install -q -e ".[ffcv]"; \
	else echo "note: FFCV not installed (needs pkg-config, OpenCV, libturbojpeg: run make system-deps as root)"; fi
	touch $@

# System packages FFCV builds against (Debian/Ubuntu, as root).
system-deps:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config libopencv-dev libturbojpeg0-dev

demo: install
	$(VENV)/bin/fastkd study --preset demo --out $(RUNS)

lint: install-test
	$(VENV)/bin/ruff check fastkd pipelines kernels tests scripts

test: lint
	$(PY) -m pytest -q

test-fast: install-test
	$(PY) -m pytest -q -m "not slow"

bench: install-test
	$(PY) scripts/bench_pipeline.py

clean:
	rm -rf $(VENV) runs bench-results
