# The two commands: `make demo` and `make test`. Each installs what it needs into .venv (pinned by
# requirements.lock) and, for the CDK CLI, node_modules (pinned by package-lock.json).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
export PIP_CONSTRAINT :=
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export SKIP_SLACK_SDK_WARNING := 1

.PHONY: demo test lint typecheck unit functional e2e infra-test bench synth checkov schema lock clean help

help:
	@echo "make demo   - the whole pipeline in the local sandbox (no AWS account, no Slack workspace)"
	@echo "make test   - lint, type-check and the full test suite"
	@echo "make bench  - the benchmarks (ratios printed side by side)"
	@echo "make synth  - cdk synth the central stack and the member StackSets"
	@echo "make checkov - checkov over the synthesized templates (its own venv; not part of make test)"

$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade 'pip>=24'
	touch $@

# The sandbox needs no CDK: demo installs only runtime + sandbox dependencies.
$(VENV)/.sandbox: $(VENV)/.base pyproject.toml requirements.lock
	$(PIP) install -c requirements.lock -e '.[sandbox]'
	touch $@

$(VENV)/.dev: $(VENV)/.sandbox
	$(PIP) install -c requirements.lock -e '.[sandbox,infra,dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(VENV)/.sandbox
	$(BIN)/macie-chatops demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

# pytest on every core (pytest-xdist): most of the suite's time is the sandbox, one process's threads (one core at a
# time), or waiting on it. Each worker takes whole test modules (every CDK test on one worker: tests/conftest.py), the
# e2e modules, the longest, first (in collection order, not reordered by size).
PYTEST_WORKERS ?= auto

test: $(VENV)/.dev node_modules/.installed lint typecheck
	$(BIN)/macie-chatops validate
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

unit: $(VENV)/.dev
	$(BIN)/pytest tests/unit

bench: $(VENV)/.dev
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

synth: $(VENV)/.dev node_modules/.installed
	PATH="$(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$$PATH" npx cdk synth -q

# checkov, not part of `make test`: in a virtual environment of its own (it pins boto3 and packaging older than
# the project's). It fails on any finding not in checkov.baseline; docs/checkov.md says why each one there does
# not apply. After a reviewed change: `make checkov CHECKOV_ARGS=--create-baseline` writes
# cdk.out/.checkov.baseline; move it over checkov.baseline and say why in docs/checkov.md.
CHECKOV_VENV := .checkov-venv
CHECKOV_VERSION := 3.3.30
CHECKOV_ARGS ?= --baseline checkov.baseline

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip --disable-pip-version-check -q install 'checkov==$(CHECKOV_VERSION)'
	touch $@

checkov: synth $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov --framework cloudformation --skip-download --compact --quiet \
	  $$(for t in cdk.out/*.template.json cdk.out/member-templates/*.json; do printf ' -f %s' "$$t"; done) \
	  $(CHECKOV_ARGS)

schema: $(VENV)/.sandbox
	$(BIN)/macie-chatops schema > accounts.schema.json

# Re-pin every dependency (run after changing pyproject.toml; commit the result).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/python -m pip install -q --upgrade 'pip>=24'
	.lockvenv/bin/python -m pip install -q '.[sandbox,infra,dev]'
	.lockvenv/bin/python -m pip freeze --exclude macie-chatops | grep -v '^-e' > requirements.lock
	rm -rf .lockvenv

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules cdk.out .pytest_cache .mypy_cache .ruff_cache build *.egg-info
