# The two set-up commands of the README: `make demo` and `make test`. Both install first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install demo test lint

# torch first, pinned to the CPU build, or sentence-transformers pulls a multi-GB CUDA build
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"

demo: install
	portrayal-audit scan corpora/sample --output reports/sample-scan --overwrite
	portrayal-audit report reports/sample-scan
	portrayal-audit manifest reports/sample-scan --policy default --output reports/sample-manifest.parquet
	portrayal-audit index reports/sample-scan -q

lint:
	ruff check .
	ruff format --check .

# the tests also start a Ray head on 127.0.0.1, so they need the ray extra
test: install lint
	$(PIP) install -q -e ".[dev,ray]"
	$(PYTHON) -m pytest -q --durations=10
