# The two commands a new user needs: `make demo` and `make test`. Both create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
# Keep the demo and the tests off the network: models and data are built or shipped locally.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export WANDB_MODE ?= offline

CORES ?= all

.PHONY: demo readme test test-slurm rehearse venv lint dryrun-paper lock clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q --no-compile -c constraints.txt -e '.[dev]'
	@# pip byte-compiles one file at a time (~105 s of a 160 s install); compileall on every core
	@# takes half that. Files that are not Python 3.11 (package templates) fail there as in pip: ignored.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml
	$(BIN)/snakemake --report results/demo/report.html --configfile config/demo.yaml
	@$(BIN)/crest where --configfile config/demo.yaml
	@# the README's demo section must be this run's results/demo/paper/readme_tables.md (exit 1 with the
	@# differing lines if not: paste it with `make readme`); tests/test_readme.py checks the same
	$(BIN)/crest evaluate readme-check --readme README.md --section results/demo/paper/readme_tables.md

# Paste the demo run's generated section (results/demo/paper/readme_tables.md) between README.md's markers.
readme: $(STAMP)
	$(BIN)/crest evaluate readme-check --readme README.md --section results/demo/paper/readme_tables.md --write

test: $(STAMP)
	$(BIN)/python -m pytest

# The data stage on a real single-node SLURM cluster through profiles/slurm (root: installs
# Debian's slurm-wlm, munge, MariaDB; starts and stops the daemons). tests/slurm/run.sh.
test-slurm: $(STAMP)
	bash tests/slurm/run.sh

# The paper config, unchanged, offline on stand-ins of every hub model and dataset it reads
# (config/rehearsal.yaml changes sizes only; docs/rehearsal.md). Writes results/rehearsal/rehearsal.json
# and fails when a rule ran no job, a benchmark has no number, or anything tried the network.
rehearse: $(STAMP)
	$(BIN)/crest rehearse run --configfile config/config.yaml config/rehearsal.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint --configfile config/demo.yaml

dryrun-paper: $(STAMP)
	$(BIN)/snakemake -n --quiet rules --configfile config/config.yaml

# Re-resolve every dependency in a scratch venv and rewrite constraints.txt.
lock:
	rm -rf /tmp/crest-lock && $(PYTHON) -m venv /tmp/crest-lock
	/tmp/crest-lock/bin/python -m pip install -q --upgrade pip==26.3
	/tmp/crest-lock/bin/python -m pip install -q -e '.[dev]'
	{ echo "# Exact versions of every package a fresh install resolves (Python 3.11, Linux)."; \
	  echo "# Used as a pip constraints file by the Makefile. Regenerate: make lock"; \
	  /tmp/crest-lock/bin/python -m pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+.*/torch==\1/'; } > constraints.txt

clean-demo:
	rm -rf results/demo
