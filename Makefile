# Two entry points for users: `make run` (the whole default experiment) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin

.PHONY: run test bench lint env apt-lists

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# apt-get download needs package lists; a fresh Debian machine may have none.
apt-lists:
	@if command -v apt-get >/dev/null && ! ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1; then \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq; fi

run: env apt-lists
	$(BIN)/snakemake --cores $(CORES) --workflow-profile profiles/default
	$(BIN)/snakemake --cores 1 --workflow-profile profiles/default --report results/report.html

test: env
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: env
	$(BIN)/python benchmarks/run.py

lint: env
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
