# Two entry points: `make demo` and `make test`. Both create .venv and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
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

system-data:
	bash scripts/install_system_data.sh

demo: $(STAMP)
	$(VENV)/bin/transfer-influence demo --out demo-study

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/influence_kernel.py
	$(PY) bench/models_per_minute.py

clean:
	rm -rf $(VENV) demo-study .pytest_cache
