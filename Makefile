# Two commands do all set-up: `make demo` and `make test`. Each creates .venv if missing, installs the project,
# provisions the LPIPS backbones offline and the system tools it needs; each is fast when all is there.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export DAGSTER_HOME := $(CURDIR)/dagster_home
export PYTHONUNBUFFERED := 1

.PHONY: setup system-deps demo test lint lock ui play tensorboard prune-models clean-data

# Exact versions from requirements.lock (what the suite was run on), then the project itself without resolving again.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $@

# Resolve requirements.lock again after a change to pyproject.toml's dependencies (tests/test_lock.py checks that
# the lock covers them and is what is installed). LOCK_ARGS: more uv options, e.g. --upgrade-package dagster.
LOCK_ARGS ?= $(if $(wildcard /etc/xdg/pip/constraints.txt),--constraint /etc/xdg/pip/constraints.txt)
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 --index-strategy unsafe-best-match \
	  $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS)) --no-header --no-annotate $(LOCK_ARGS) -o requirements.lock

# Debian packages: ffmpeg (the CLI baseline in bench/ and tests), chromium (the UI test's headless browser),
# postgresql (the server tests/test_postgres.py starts; its binaries live under /usr/lib/postgresql/<ver>/bin).
system-deps:
	@command -v ffmpeg >/dev/null && command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg chromium postgresql >/dev/null; }

setup: $(STAMP) system-deps
	@$(PY) -m ahriuwu_core.images.lpips_weights

demo: setup
	$(PY) -m pipeline.demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The suite in TEST_WORKERS processes (tests/conftest.py groups the tests so each costly fixture is built once).
TEST_WORKERS ?= 2
test: setup lint
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --durations 30

# The play page for the model `make demo` trained. DATA_ROOT: another data root; PLAY_PORT: another port;
# PLAY_ARGS: more options (python -m ahriuwu_core.play --help), e.g. --device cuda.
DATA_ROOT ?= assets
play: setup
	$(PY) -m ahriuwu_core.play --data-root $(DATA_ROOT) $(if $(PLAY_PORT),--port $(PLAY_PORT)) $(PLAY_ARGS)

# Every training run's curves under the data root (set AHRIUWU_TENSORBOARD_URL for the UI to link here).
TB_PORT ?= 6006
tensorboard: setup
	$(VENV)/bin/tensorboard --logdir $(DATA_ROOT) --host 127.0.0.1 --port $(TB_PORT)

# Published models stay under <data root>/<stage>/models/ (each materialization's `model` metadata names one) until
# this removes all but the KEEP newest per stage; the current one is always kept.
KEEP ?= 5
prune-models: setup
	$(PY) -m ahriuwu_core.cli.prune_models --data-root $(DATA_ROOT) --keep $(KEEP)

ui: setup
	$(VENV)/bin/dg dev -h 127.0.0.1 -p 3000 -w workspace.yaml

clean-data:
	rm -rf assets/* dagster_home/storage dagster_home/history dagster_home/schedules dagster_home/*.db
