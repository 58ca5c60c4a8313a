# Two commands matter: `make demo` and `make test`. Both install what they need into .venv.
# RADSAL_VENV from the environment (CI keeps one outside the clone) wins over the default.
VENV ?= $(or $(RADSAL_VENV),.venv)
export RADSAL_VENV := $(VENV)
BIN := $(VENV)/bin

.PHONY: demo serve test test-fast lint typecheck check venv bench clean

venv:
	@bash scripts/bootstrap.sh

demo: venv
	$(BIN)/radsal demo $(ARGS)

serve: venv
	$(BIN)/radsal serve $(ARGS)

test: venv
	@bash scripts/run_tests.sh $(ARGS)

test-fast: venv
	$(BIN)/pytest -m "not slow and not browser" $(ARGS)

lint: venv
	$(BIN)/ruff check app ml tests bench migrations
	$(BIN)/ruff format --check app ml tests bench

typecheck: venv
	$(BIN)/mypy app ml

check: lint typecheck test

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache
