# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Debian packages napari's Qt canvas needs under a virtual X server (Xvfb)
XVFB_PKGS := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
             libxcb-xinerama0 libxcb-xinput0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 \
             libegl1 libgl1 libfontconfig1 libdbus-1-3

.PHONY: env test demo bench bench-all lint xvfb clean

env: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	@# A CPU build of torch from this machine's disk when none is installed; GPU users who
	@# installed a CUDA torch themselves keep it (pyproject asks only for a range).
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

xvfb:
	@if ! command -v Xvfb >/dev/null 2>&1 || ! ldconfig -p | grep -q libxcb-cursor; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(XVFB_PKGS) >/dev/null; \
	  else \
	    echo "Xvfb missing: run 'sudo apt-get install -y $(XVFB_PKGS)'"; exit 1; \
	  fi; \
	fi

test: $(STAMP) xvfb
	$(PY) -m pytest -q --timeout=900

demo: $(STAMP) xvfb
	$(VENV)/bin/cellcurator demo --out demo_out

# the speed/memory/GUI figures (issue 8) and the active-learning curve: ~9 min on 2 cores
BENCHES := inference memory responsiveness retrain item_table large_folder triage occlusion gpu active_learning
bench: $(STAMP) xvfb
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done

# plus the few-labels pretraining study (~13 min), the issue-4 celltype report (~12 min) and
# the CNN vs kNN / SVM baselines with the data-volume curve (~35 min on a loaded 2-core CPU)
bench-all: bench
	$(PY) bench/few_labels.py
	$(PY) bench/celltype_report.py
	$(PY) bench/baselines.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) demo_out build dist .pytest_cache
