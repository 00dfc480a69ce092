# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

# The project's own instance (git-ignored). `make dev` honours a DAGSTER_HOME you set yourself
# and never overwrites its dagster.yaml; `make run`, the offline demo, always uses this one.
LOCAL_DAGSTER_HOME := $(CURDIR)/.dagster_home
export DAGSTER_HOME ?= $(LOCAL_DAGSTER_HOME)

.PHONY: setup run test dev bench home project-env clean screenshots

setup: $(STAMP) home project-env

# --no-deps: the lock is complete and hashed, so nothing unpinned can sneak in.
$(STAMP): requirements.lock pyproject.toml
	@echo "setup: installing the locked dependencies into $(VENV)/"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements.lock
	@$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-* && touch $@

home:
	@mkdir -p "$(DAGSTER_HOME)"
	@if [ "$(DAGSTER_HOME)" = "$(LOCAL_DAGSTER_HOME)" ] || [ ! -f "$(DAGSTER_HOME)/dagster.yaml" ]; then \
		cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"; \
	else echo "Keeping your own $(DAGSTER_HOME)/dagster.yaml"; fi

# Every command run from the checkout uses the project's instance without exporting anything:
# `dagster` (dev, job execute, schedule, ...), `dg` (launch, dev) and the fine_tuning CLIs read
# DAGSTER_HOME from .env in the working directory (git-ignored; a DAGSTER_HOME you export wins,
# and the other lines of your own .env are kept).
ENV_LINE := DAGSTER_HOME=$${DAGSTER_HOME:-$(LOCAL_DAGSTER_HOME)}
project-env:
	@if grep -qs '^DAGSTER_HOME=' .env && ! grep -qs '^DAGSTER_HOME=\$${DAGSTER_HOME:-' .env; then \
		echo "Keeping the DAGSTER_HOME of your .env"; \
	elif ! grep -qsxF '$(ENV_LINE)' .env; then \
		{ grep -vs '^DAGSTER_HOME=' .env; echo '$(ENV_LINE)'; } > .env.tmp && mv .env.tmp .env; \
	fi

# The demo is offline and on the shipped sample even in a shell that has an API key or other
# inputs set: running it must never cost money.
OFFLINE := env -u OPENAI_API_KEY -u OPENAI_BASE_URL -u GOODREADS_BOOKS_URL -u GOODREADS_AUTHORS_URL \
	-u FINE_TUNING_DUCKDB_DATABASE -u MOTHERDUCK_TOKEN -u AZURE_OPENAI_ENDPOINT -u AZURE_OPENAI_API_KEY \
	FINE_TUNING_PROVIDER=local

# Progress lines on the terminal (config/offline.yaml picks the compact `progress` logger); the
# full event stream, DEBUG included, stays in the run's event log (`make dev`, then Runs).
# VIRTUAL_ENV tells dg which environment is the project's, so it does not warn about a mismatch.
run: export DAGSTER_HOME := $(LOCAL_DAGSTER_HOME)
run: setup home
	@echo "fine_tuning_job: offline, on the shipped sample (instance: $(DAGSTER_HOME))"
	@$(OFFLINE) VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg launch --job fine_tuning_job -c config/offline.yaml
	@$(BIN)/python -m fine_tuning.summary

# The suite and the UI name their provider: the local backend unless you choose another one.
test: setup
	# Independent tests run side by side, one worker per core (pytest-xdist; pyproject.toml picks
	# --dist=worksteal so no worker idles while the other still has a queue of long tests).
	FINE_TUNING_PROVIDER=local $(BIN)/python -m pytest -q -n auto

dev: export FINE_TUNING_PROVIDER ?= local
dev: setup home
	$(BIN)/dagster dev --host 127.0.0.1 --port 3000

# Pictures of the real UI for the README (docs/images/): needs Debian's chromium package; not on CI.
screenshots: setup
	$(BIN)/python scripts/screenshots.py --out docs/images

# Every benchmark, for both shipped tasks, Goodreads at 1x and 10x. Knobs: BENCH_SCRIPTS (which
# scripts, e.g. `make bench BENCH_SCRIPTS=benchmarks/bench_job.py`), FINE_TUNING_BENCH_TASKS
# (goodreads,support_tickets) and FINE_TUNING_BENCH_SCALES (1,10). Each script prints its JSON
# summary (kept in benchmarks/out/<script>.json); the rows of the README's Performance table that
# every script prints are collected in benchmarks/out/readme_rows.md and shown at the end, with
# the run's total time.
BENCH_SCRIPTS ?= $(sort $(wildcard benchmarks/bench_*.py))
BENCH_OUT := benchmarks/out
bench: export FINE_TUNING_PROVIDER := local
bench: export FINE_TUNING_BENCH_ROWS := $(CURDIR)/$(BENCH_OUT)/readme_rows.md
bench: setup
	@mkdir -p $(BENCH_OUT) && : > $(BENCH_OUT)/readme_rows.md
	@started=$$(date +%s); for script in $(BENCH_SCRIPTS); do \
		name=$$(basename $$script .py); echo "== $$script ($$(date -u +%H:%M:%S) UTC, load $$(cut -d' ' -f1-3 /proc/loadavg))"; \
		$(BIN)/python $$script > $(BENCH_OUT)/$$name.json; status=$$?; cat $(BENCH_OUT)/$$name.json; \
		[ $$status -eq 0 ] || { echo "make bench: $$script failed ($$status)"; exit $$status; }; \
	done; \
	echo "== README Performance rows ($(BENCH_OUT)/readme_rows.md)"; cat $(BENCH_OUT)/readme_rows.md; \
	echo "== make bench took $$(( $$(date +%s) - started )) s"

clean:
	rm -rf $(DAGSTER_HOME) data/goodreads.duckdb data/files data/local_openai
