# The two commands a new user needs: `make reproduce` and `make test`.
# Everything installs into .venv/ at the repository root (git-ignored); pip keeps no download cache, so an
# install needs disk only for the venv itself (about 1.9 GB with the CPU build of torch).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= configs/default.yaml

.PHONY: install reproduce report overview lodo test test-fast bench lab lock verify-data real-data slim

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir -c requirements/constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Run the whole study (all notebooks via papermill) for CONFIG (default: configs/default.yaml).
reproduce: install
	$(PY) -m crack_utils.pipeline --config $(CONFIG)

## HTML pages of every executed notebook of the committed studies (not committed: rendered on demand).
report: install
	$(PY) -m crack_utils.study.publishing results/*/

## results/index.html, the page a reader opens first: Table 1, Figure 2 and a verdict per claim of the paper,
## built from the committed studies alone (no data, no checkpoints).
overview: install
	$(PY) -m crack_utils.overview

## Leave-one-dataset-out: the six configs/lodo_*.yaml studies, 3 losses x 3 seeds each (needs ../shared/data;
## about 5 h on 2 CPU cores; finished runs are skipped), then notebook 06's summary in results/lodo/.
lodo: install
	$(PY) -m crack_utils.generalization --configs configs/lodo_*.yaml

## Before committing results: compress big per-run tables, strip figures from executed notebooks, and
## check that the tracked tree stays under 28 MiB (crack_utils/study/committed.py).
slim: install
	$(PY) -m crack_utils.study.committed $(wildcard results/*/) --check

## Check a copy of the six real datasets file by file against data/real_data_sha256.csv.gz (data/README.md).
DATA ?= ../shared/data
verify-data: install
	$(PY) -m crack_utils.realdata.verify $(DATA)

## Rebuild the six real datasets from their public GitHub origins (pinned commits) into OUT, then verify
## them; ORIGINS=<folder of <owner>+<name> clones> reads local copies instead of cloning.
real-data: install
	@test -n "$(OUT)" || { echo "usage: make real-data OUT=<folder> [ORIGINS=<folder of clones>]"; exit 2; }
	$(PY) -m crack_utils.realdata.build --out $(OUT) $(if $(ORIGINS),--origins $(ORIGINS))

## Run the test suite (unit tests, notebook test on a tiny config, real-data tests when ../shared/data exists),
## in 2 worker processes (pytest-xdist): most of a notebook test is one-core work (kernel start, imports).
## One test at a time to each worker, the longest first (tests/conftest.py orders them).
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1

## Unit tests only (no notebook execution).
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1 -m "not notebooks"

## Speed benchmark (prints name: value figures; uses results/seeds/01_data when present).
bench: install
	$(PY) -m crack_utils.tools.bench

## Open the notebooks in JupyterLab.
lab: install
	$(VENV)/bin/jupyter lab notebooks/

## Regenerate the lock file from a fresh resolve of pyproject.toml.
lock:
	rm -rf /tmp/crack-lock-venv && $(PYTHON) -m venv /tmp/crack-lock-venv
	/tmp/crack-lock-venv/bin/pip install --quiet "torch==2.13.0" "torchvision==0.28.0" -e ".[dev]"
	/tmp/crack-lock-venv/bin/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements/constraints.txt.new
	mv requirements/constraints.txt.new requirements/constraints.txt
