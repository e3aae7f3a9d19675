# senprep developer and user commands. `make run` and `make test` are the two set-up commands.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PORT ?= 5006

.PHONY: run test lint bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[app,dev,bench]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/panel serve app --address 127.0.0.1 --port $(PORT) --allow-websocket-origin=127.0.0.1:$(PORT) --allow-websocket-origin=localhost:$(PORT)

test: $(STAMP)
	$(BIN)/ruff check senprep_core app tests benchmarks
	$(BIN)/ruff format --check senprep_core app tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_s2_roi.py
	$(BIN)/python benchmarks/bench_s1_grd.py
	$(BIN)/python benchmarks/bench_scaleout.py
	$(BIN)/python benchmarks/bench_download.py
	$(BIN)/python benchmarks/bench_fetch_modes.py
	$(BIN)/python benchmarks/bench_timeseries.py
	$(BIN)/python benchmarks/bench_scale_model.py
	$(BIN)/python benchmarks/bench_s1_rtc.py
	$(BIN)/python benchmarks/bench_preview.py

demo: $(STAMP)
	$(BIN)/senprep demo --outdir senprep-demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache senprep-demo
