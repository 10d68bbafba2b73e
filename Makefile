# tfseq: `make demo` runs the classic study, `make test` the test suite.
# Both create .venv when it is missing and install the package into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-slow newcomer bench bench-realdata bench-explain bench-monitor bench-step bench-stdf bench-streaming bench-outofcore bench-commands lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

# Reinstall only when the package metadata changes.
$(VENV)/.installed-runtime: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-runtime

$(VENV)/.installed-bench: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed-runtime $(VENV)/.installed-test

demo: $(VENV)/.installed-runtime
	$(BIN)/tfseq demo

# The fast tier, on two pytest-xdist workers (each module's tests on one, so its fixtures are made
# once): 10.6 min against 14.0 in one process on 2 cores. `make test-slow` runs the kill/resume,
# multi-process and end-to-end checks, in one process (their timings and ports are their own).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadscope --durations=15

test-slow: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m slow --durations=10

# The path a new user takes, in a fresh venv with a plain `pip install .` (CI runs it after `make test`).
newcomer:
	bash .ci/newcomer

$(VENV)/.installed-lint: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lint]'
	touch $@ $(VENV)/.installed-runtime

$(VENV)/.installed-docs: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@ $(VENV)/.installed-runtime

# ruff and mypy over the package, and the public API as a type checker sees it (CI runs it).
lint: $(VENV)/.installed-lint
	$(BIN)/ruff check tfseq tests benchmarks .ci
	$(BIN)/python -m mypy
	$(BIN)/python .ci/typed_api.py

# The documentation site, built strictly into site/ (CI runs it).
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/run.py

# tfseq train's defaults against simple baselines on real public data sets (about 25 min).
bench-realdata: $(VENV)/.installed-runtime
	$(BIN)/python benchmarks/realdata.py

# tfseq explain's speed (10,000 sequences of an LSTM-128) and tfseq monitor's alarms (false and true).
bench-explain: $(VENV)/.installed-runtime
	$(BIN)/python benchmarks/bench_explain.py --sequences 10000

bench-monitor: $(VENV)/.installed-runtime
	$(BIN)/python benchmarks/bench_monitor.py

# Step artifacts of a streaming LSTM-128: per-step latency at batch 1 in LiteRT and onnxruntime
# (targets: dynamic-range <= 10 us, int8 <= 15 us); writes benchmarks/step_results.json.
bench-step: $(VENV)/.installed-runtime
	$(BIN)/python benchmarks/bench_step.py

# Streaming early warning and the adaptive-test policy on the demo's data (about 10 min): accuracy per cycle
# against --predict-at models, test cycles saved at several escape bounds, the bound over 20 random splits;
# writes benchmarks/streaming_results.json.
bench-streaming: $(VENV)/.installed-runtime
	$(BIN)/python benchmarks/bench_streaming.py

# STDF to long format: 50,000 parts x 20 tests in one file (targets 3 s, 1 GB); writes benchmarks/stdf_results.json.
bench-stdf: $(VENV)/.installed-test
	$(BIN)/python benchmarks/bench_stdf.py

# Whole commands with default models against PyTorch (train, export, predict, --help; CSV and Parquet) and the
# CPU's instruction sets (about 30 min on 2 cores; --quick a few); writes benchmarks/commands_results.json.
bench-commands: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_commands.py

# Out-of-core training from a Parquet dataset: peak memory as the data grow, throughput against in-memory
# training, and two workers on loopback; writes benchmarks/outofcore_results.json.
bench-outofcore: $(VENV)/.installed-runtime
	$(BIN)/python benchmarks/bench_outofcore.py

clean:
	rm -rf $(VENV) runs build site *.egg-info .pytest_cache .mypy_cache .ruff_cache
