# The README's two commands: `make demo` (install + main job) and `make test` (install + tests).
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build on the project's machines; on a GPU machine use e.g. TORCH_SPEC="torch==2.11.*"
# with the matching CUDA index, before `make install`.
TORCH_SPEC ?= torch==2.13.0
RUNS ?= runs/demo

.PHONY: install system-deps demo test test-fast bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,faiss-cpu,dali]"
	# FFCV builds from source against OpenCV and libjpeg-turbo (Debian: make system-deps);
	# without them its tests skip and the ffcv backend explains how to install it.
	if pkg-config --exists libturbojpeg && (pkg-config --exists opencv4 || pkg-config --exists opencv); then \
		$(PY) -m pip install -q -e ".[ffcv]"; \
	else echo "note: FFCV not installed (no pkg-config/opencv/libturbojpeg; run make system-deps as root)"; fi
	touch $@

# System packages FFCV builds against (Debian/Ubuntu, as root).
system-deps:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config libopencv-dev libturbojpeg0-dev

demo: install
	$(VENV)/bin/fastkd study --preset demo --out $(RUNS)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) scripts/bench_pipeline.py

clean:
	rm -rf $(VENV) runs bench-results
