# The two commands of the README: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow test-site reliability lint types check bench clean chromium tmux prometheus slurm-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: broker up if needed, owner on the emulator, a workload from MPI ranks, results + timeline
demo: $(STAMP)
	$(BIN)/qsched demo

## test: the default suite (unit, integration, e2e, chaos; `slow`, `slurm`, `munge` excluded); finds or starts a broker
test: $(STAMP)
	$(BIN)/pytest -m "not slow and not slurm and not munge" -n 4 --dist loadfile

## test-slow: the slow tier (failover matrix, soak, 2,000 simulated histories); CI runs it after `test`
test-slow: $(STAMP)
	$(BIN)/pytest -m "slow and not slurm and not munge"

## reliability: the reliability scenarios (marker `reliability`: chaos under load, cluster, fuzzing, ...); writes docs/reliability.md
## (only after a green run: a red one leaves docs/reliability.md alone and says where its report is)
reliability: $(STAMP)
	rm -rf .reliability && mkdir -p .reliability
	RELIABILITY_OUT=$(CURDIR)/.reliability $(BIN)/pytest -m reliability; status=$$?; \
	$(BIN)/python -m tests.reliability .reliability "pytest -m reliability" > .reliability/reliability.md; \
	green=$$?; \
	if [ $$status -eq 0 ] && [ $$green -eq 0 ]; then cp .reliability/reliability.md docs/reliability.md; \
	else echo "make reliability: the run was red (pytest exit $$status); docs/reliability.md left as it was, this run's report (FAILED at its top) is .reliability/reliability.md" >&2; \
	[ $$status -ne 0 ] || status=1; fi; \
	exit $$status

## test-site: a real single-node Slurm + MUNGE and MUNGE broker auth (root; ~5 min; installs Slurm/MUNGE when missing)
test-site: $(STAMP) slurm-deps
	$(BIN)/pytest -m "slurm or munge"

## chromium: the headless browser the HTML-timeline test renders with (Debian package), if missing
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

## prometheus: Prometheus and promtool (Debian package; the observability tests run them on loopback), if missing.
## RUNLEVEL=1 keeps the package's init script from starting a system-wide Prometheus.
prometheus:
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

## tmux: the terminal the `qsched top` tests draw in (Debian package), if missing
tmux:
	@command -v tmux >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq tmux; }

lint: $(STAMP)
	$(BIN)/tox -e lint

types: $(STAMP)
	$(BIN)/tox -e types

check: lint types

bench: $(STAMP)
	$(BIN)/tox -e bench

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache *.egg-info

## slurm-deps: Slurm + MUNGE Debian packages for the `slurm`/`munge` tests (root; no-op when installed)
slurm-deps:
	infra/slurm/deps.sh
