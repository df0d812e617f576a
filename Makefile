# `make run`  : run the portal (scripts/run.sh)
# `make test` : run the tests  (scripts/test.sh), e.g. make test PYTEST_ARGS='-x tests/unit'
# `make setup`: create .venv and install requirements.txt only
SHELL := /bin/bash

.PHONY: run test setup

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

setup:
	bash -c 'source scripts/lib.sh && ensure_venv'
