# The two commands of the README: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow test-site test-deps test-slow-deps reliability lint types check bench clean chromium tmux prometheus slurm-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: broker up if needed, owner on the emulator, a workload from MPI ranks, results + timeline
demo: $(STAMP)
	$(BIN)/qsched demo

## test: the default suite (unit, integration, e2e, chaos; `slow`, `slurm`, `munge` excluded); finds or starts a broker.
## Its tools besides Python come first (test-deps), so a missing one stops it at once, not after minutes.
test: test-deps $(STAMP)
	$(BIN)/pytest -m "not slow and not slurm and not munge" -n 4 --dist loadfile --durations=30

## test-slow: the slow tier (failover matrix, soak, 2,000 simulated histories); CI runs it after `test`
test-slow: test-slow-deps $(STAMP)
	$(BIN)/pytest -m "slow and not slurm and not munge"

## test-deps: what the default suite runs besides Python: headless Chromium (the HTML timeline),
## tmux (`qsched top`), promtool (the owner's /metrics). Missing ones are installed from Debian's
## packages as root (as .ci/run does); otherwise it fails naming the one command to run.
TEST_TOOLS      := chromium tmux promtool
SLOW_TEST_TOOLS := $(TEST_TOOLS) prometheus
test-deps:
	@$(MAKE) --no-print-directory tools-present TOOLS="$(TEST_TOOLS)" TARGET=test-deps

## test-slow-deps: the same for the slow tier, which also runs a Prometheus server
test-slow-deps:
	@$(MAKE) --no-print-directory tools-present TOOLS="$(SLOW_TEST_TOOLS)" TARGET=test-slow-deps

tools-present:
	@missing=""; for tool in $(TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing what the tests run:$$missing (Debian packages)"; \
		$(MAKE) --no-print-directory chromium tmux prometheus; \
	elif command -v apt-get >/dev/null 2>&1; then \
		echo "make: the tests need$$missing; install them with: sudo make $(TARGET)" >&2; exit 1; \
	else \
		echo "make: the tests need$$missing (Chromium, tmux, Prometheus's promtool): install them with your package manager" >&2; exit 1; \
	fi

## reliability: the reliability scenarios (marker `reliability`: chaos under load, cluster, fuzzing, ...); writes docs/reliability.md
## (only after a green run: a red one leaves docs/reliability.md alone and says where its report is)
reliability: $(STAMP)
	rm -rf .reliability && mkdir -p .reliability
	RELIABILITY_OUT=$(CURDIR)/.reliability $(BIN)/pytest -m reliability; status=$$?; \
	$(BIN)/python -m tests.support.reliability .reliability "pytest -m reliability" > .reliability/reliability.md; \
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
