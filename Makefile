# pymultus: the two commands a newcomer runs (as root, on Debian 12) are `make demo` and `make test`.
# Both install what they need and are safe to run twice.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Debian packages: the CNI plugins, the venv module, and the package of every external command
# listed in deps/commands.tsv (what the demo, the tests and the benchmarks run).
COMMANDS     := deps/commands.tsv
APT_PACKAGES := containernetworking-plugins python3-venv \
	$(shell awk -F'\t' '!/^\#/ && NF == 2 {print $$2}' $(COMMANDS) | sort -u)

.PHONY: all deps venv lint test test-unit test-integration demo bench soak clean

all: test

deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo ">> installing apt packages: $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi
	@awk -F'\t' '!/^\#/ && NF == 2' $(COMMANDS) | while IFS="$$(printf '\t')" read -r cmd pkg; do \
		PATH="$$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$$cmd" >/dev/null || { \
			echo "make deps: command '$$cmd' is missing after installing its Debian package '$$pkg' ($(COMMANDS))"; exit 1; }; \
	done

$(STAMP): pyproject.toml $(COMMANDS)
	@$(MAKE) --no-print-directory deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: deps $(STAMP) lint
	$(VENV)/bin/pytest -q tests

test-unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

test-integration: $(STAMP)
	$(VENV)/bin/pytest -q tests/integration

demo: deps $(STAMP)
	$(VENV)/bin/pymultus demo

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: deps $(BENCH_STAMP)
	$(PY) bench/run.py

CYCLES ?= 10000

soak: deps $(BENCH_STAMP)
	$(PY) bench/soak.py --cycles $(CYCLES)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
