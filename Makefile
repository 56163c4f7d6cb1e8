# The two commands of the README:
#   make demo   runs the main job on its built-in default
#   make test   runs the test suite
# Each first runs tools/setup_env.py, which builds the environment on first use (~15 min on 2 cores,
# mmcv is compiled) and returns in about a second afterwards.
PYTHON ?= python3
VENV ?= $(or $(MAE_TRANSFER_VENV),.venv)
VENV_PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?= -q

.PHONY: env demo test verify
env:
	@$(PYTHON) tools/setup_env.py --venv $(VENV)

demo: env
	$(VENV_PYTHON) tools/demo.py

test: env
	$(VENV_PYTHON) -m pytest $(PYTEST_ARGS)

verify: env
	$(VENV_PYTHON) -m mae_transfer.utils.collect_env --verify
