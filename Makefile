# Two commands do all the set-up on a fresh machine: `make book` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch/torchvision are installed first, pinned to the wheels this machine has on disk;
# override on another machine, e.g. `make test TORCH="torch torchvision"`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install book test test-fast lint format bench clean chromium notebooks

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[book,test,bench]"
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/python book/_cache_guard.py _build
	INTERP_LIB_BOOK_BUILD=1 $(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

test: $(STAMP)
	@command -v "$${CHROMIUM:-chromium}" >/dev/null 2>&1 || echo "note: the browser test of the built \
	book needs Chromium: install Debian's with \`apt-get install chromium\` (or set CHROMIUM=/path); \
	without it that test skips locally and fails in CI"
	$(BIN)/python -m pytest

# The fast suite (under a minute on 2 cores): no book, fuzz, distributed or other slow tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# CI only (.ci/run): install Debian's Chromium for the browser test when it is missing
# (Playwright's own browser download does not work offline). Needs root.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$CHROMIUM" ] || { \
	  echo "installing Debian's chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The chapters as .ipynb (for Colab and Jupyter); a test checks they are up to date.
notebooks: $(STAMP)
	$(BIN)/python book/_notebooks.py notebooks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks against peers measured in the same run (minutes; DADApy gets its own venv),
# every method at BENCH_THREADS threads; the TwoNN and profiling benches at
# BENCH_SETTINGS_THREADS (one thread and each library's default) and BENCH_LOADS (no added
# load, and bench/_load.py's 2 busy processes per core). The TwoNN and profiling summaries
# go to bench/summaries/, and bench/report.py rewrites the README's one benchmark table
# from them (between <!-- bench:start --> and <!-- bench:end -->, with date and machine).
BENCH_THREADS ?= 1
BENCH_SETTINGS_THREADS ?= 1,default
BENCH_LOADS ?= idle,loaded
bench: $(STAMP)
	$(BIN)/python bench/twonn.py --threads $(BENCH_SETTINGS_THREADS) --loads $(BENCH_LOADS) \
	  --json bench/summaries/twonn.json
	$(BIN)/python bench/twonn_growth.py --json bench/summaries/twonn_growth.json
	$(BIN)/python bench/knn_faiss.py --threads $(BENCH_SETTINGS_THREADS) --loads $(BENCH_LOADS) \
	  --json bench/summaries/knn_faiss.json
	$(BIN)/python bench/layer_profile.py --threads $(BENCH_SETTINGS_THREADS) \
	  --loads $(BENCH_LOADS) --json bench/summaries/layer_profile.json
	$(BIN)/python bench/protopnet.py --threads $(BENCH_THREADS) --json bench/summaries/protopnet.json
	$(BIN)/python bench/baselines.py
	$(BIN)/python bench/protopnet_birds.py
	$(BIN)/python bench/drill_kill_resume.py --json bench/summaries/drill_kill_resume.json
	$(BIN)/python bench/report.py

clean:
	rm -rf _build
