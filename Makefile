# Two entry points: `make demo` and `make test`. Both create .venv and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The tests also exercise the optional Ray and SLURM executors: their extras on top of the base install.
TEST_STAMP := $(VENV)/.installed-test
# glibc malloc tuning for torch training on CPU (read at process start; workers inherit it).
export GLIBC_TUNABLES := glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184

.PHONY: demo test test-slow install system-data bench clean

$(STAMP): pyproject.toml scripts/install_system_data.sh
	@start=$$(date +%s); \
	bash scripts/install_system_data.sh && \
	{ [ -x $(PY) ] || $(PYTHON) -m venv $(VENV); } && \
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 && \
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]' && \
	touch $(STAMP) && echo "install: $$(( $$(date +%s) - start )) s"

install: $(STAMP)

$(TEST_STAMP): $(STAMP)
	@start=$$(date +%s); \
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,ray,slurm]' && \
	touch $(TEST_STAMP) && echo "install test extras: $$(( $$(date +%s) - start )) s"

system-data:
	bash scripts/install_system_data.sh

demo: $(STAMP)
	$(VENV)/bin/transfer-influence demo --out demo-study

test: $(TEST_STAMP)
	$(PY) -m pytest -q

test-slow: $(TEST_STAMP)
	$(PY) -m pytest -q -m slow

bench: $(TEST_STAMP)
	$(PY) bench/influence_kernel.py
	$(PY) bench/models_per_minute.py
	$(PY) bench/executor_overhead.py
	$(PY) bench/verdicts_old_new.py

clean:
	rm -rf $(VENV) demo-study .pytest_cache
