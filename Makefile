# Two entry points for users: `make run` (the whole default experiment) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin
STAMPS_DEB := resources/downloads/tuxpaint_stamps

# `make run` needs exactly python3.11 (what requirements.lock is locked for) and Debian's apt-get (the
# default's Tux Paint stamps come as a .deb): elsewhere it stops before doing anything, with one line
# saying what is missing. A .deb already at $(STAMPS_DEB) stands in for apt-get.
ifneq ($(filter run,$(MAKECMDGOALS)),)
ifneq ($(shell $(PYTHON) -c 'import sys; print(sys.version_info[:2] == (3, 11))' 2>/dev/null),True)
$(error make run needs Python 3.11 as $(PYTHON) (found: $(or $(shell $(PYTHON) -c 'import sys; print(sys.version.split()[0])' 2>/dev/null),none)); install it or pass PYTHON=/path/to/python3.11)
endif
ifeq ($(shell command -v apt-get 2>/dev/null)$(wildcard $(STAMPS_DEB)),)
$(error make run needs Debian's apt-get to download the Tux Paint stamps (tuxpaint-stamps-default 2022.06.04-1 .deb), or that .deb put at $(STAMPS_DEB))
endif
endif

.PHONY: run test faults perf lint env test-env lock apt-lists browser docs config-docs

env: $(VENV)/.installed

# Every package from the lock, each checked against its hashes; taxvlm itself editable, without deps
# (they are the lock's).
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The test and lint tools: the runtime lock plus pytest, playwright, snakefmt (same pins for the rest).
test-env: $(VENV)/.test-installed

$(VENV)/.test-installed: $(VENV)/.installed requirements-test.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-test.lock
	touch $@

# After editing the pins in pyproject.toml: both locks again, by uv (pinned), for Python 3.11 on
# x86_64 Linux whatever machine runs it. uv runs from a venv of its own, so the project's stays locked.
UV_VENV := .venv-lock
UV_LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command "make lock"
lock:
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet uv==0.13.10
	$(UV_VENV)/bin/uv pip compile pyproject.toml $(UV_LOCK_FLAGS) -o requirements.lock
	$(UV_VENV)/bin/uv pip compile pyproject.toml --group test $(UV_LOCK_FLAGS) -o requirements-test.lock

# apt-get download needs package lists; a fresh Debian machine may have none.
apt-lists:
	@if command -v apt-get >/dev/null && ! ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1; then \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq; fi

run: env apt-lists
	$(BIN)/snakemake --cores $(CORES) --workflow-profile profiles/default
	@# Snakemake writes the report in place: built under a temporary name and renamed, so that an
	@# interrupted `make run` never leaves a truncated results/report.html
	$(BIN)/snakemake --cores 1 --workflow-profile profiles/default --report results/.report.partial.html
	mv -f results/.report.partial.html results/report.html

# The report test reads results/report.html in Debian's Chromium: installed here when this user may
# (root, or sudo without a password); never an error, since without it that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then as=; elif sudo -n true 2>/dev/null; then as="sudo -n"; else exit 0; fi; \
		$$as apt-get update -qq >/dev/null 2>&1; \
		$$as env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
			>/dev/null 2>&1 || echo "note: chromium could not be installed; the report's browser test will skip" >&2; }

# One torch thread per test worker: two workers with a thread per core each oversubscribe the CPU,
# and OpenMP's spinning threads then make the suite several times slower (measured: the LM, captioning
# and encoder test files took 3.7x as long with the default threads as with OMP_NUM_THREADS=1).
test: test-env browser
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

# The fault suite (tests/test_faults.py): SIGKILLs at seeded random moments of every stage, two runs
# at once, damaged results, a full disk (a tmpfs, when root). Not part of `make test` (its time budget):
# .ci/run runs it as a step of its own.
# FAULT_SEED=N for another kill schedule (the seed in use is printed).
faults: test-env
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m faults tests/test_faults.py --durations=10 \
		$(if $(FAULT_SEED),--fault-seed $(FAULT_SEED))

perf: env
	$(BIN)/python perf/run.py
	$(BIN)/python perf/fused.py
	$(BIN)/python perf/packed.py
	$(BIN)/python perf/compile.py

# The config schema and config/README.md's key reference are generated from the settings tree.
config-docs: env
	$(BIN)/python -m taxvlm.settings.generate --schema workflow/schemas/config.schema.yaml --readme config/README.md

lint: test-env
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

# Numbers quoted in docs/ are written by runs, never typed: the latest run's answer and tables, with the
# resolved config's fingerprint (a test fails when the committed default config no longer matches it).
docs:
	@test -f results/analysis/provenance.json || { echo "no results/analysis/provenance.json: run 'make run' first" >&2; exit 1; }
	$(BIN)/python -m taxvlm.analysis.results_doc --results results --out docs/default-results.md
	@if [ -f results/tuning/tuning.md ]; then cp results/tuning/tuning.md docs/tuning.md; fi
