# InPars Lab: `make demo` (set up + main job) and `make test` (set up + tests).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# Datasets: ../shared/datasets when it exists (offline machines), else data/datasets (downloads).
export INPARS_DATA_DIR ?= $(shell [ -d ../shared/datasets ] && realpath ../shared/datasets || echo $(CURDIR)/data/datasets)
DEMO_OUT ?= runs/scifact-bm25

.PHONY: setup demo bm25-demo test test-fast test-random test-slow lint bench

setup:
	bash scripts/setup.sh

demo: setup
	$(BIN)/inpars run configs/scifact-offline.toml --runs-dir runs
	@echo "Open the dashboard on this result: $(BIN)/inpars dashboard --runs-dir runs"

bm25-demo: setup
	mkdir -p $(DEMO_OUT)
	$(BIN)/inpars index --dataset scifact --fields flat --out $(DEMO_OUT)/index-flat
	$(BIN)/inpars retrieve --dataset scifact --index $(DEMO_OUT)/index-flat --split test --k 1000 --out $(DEMO_OUT)/bm25-flat
	$(BIN)/inpars index --dataset scifact --fields multifield --out $(DEMO_OUT)/index-multifield
	$(BIN)/inpars retrieve --dataset scifact --index $(DEMO_OUT)/index-multifield --split test --k 1000 --out $(DEMO_OUT)/bm25-multifield
	$(BIN)/inpars evaluate --dataset scifact --split test --run $(DEMO_OUT)/bm25-flat --out $(DEMO_OUT)/eval-flat
	$(BIN)/inpars compare --dataset scifact --split test --runs $(DEMO_OUT)/bm25-flat $(DEMO_OUT)/bm25-multifield --baseline bm25-flat --measure nDCG@10 --out $(DEMO_OUT)/compare

# Both tiers: unit and integration (no slow test), on $(TEST_WORKERS) workers (pytest-xdist
# --dist loadfile: a test file stays on one worker, so its module fixtures are built once; the
# smoke experiment is shared between workers through a lock; TEST_WORKERS=0: serial).
# Each worker, and every CLI it starts, runs torch on TEST_THREADS threads (OMP_NUM_THREADS):
# two workers of two threads each on two cores contend, and a torch step whose thread waits
# at a barrier for the other process runs slower than on one thread (issue 15).
TEST_WORKERS ?= 2
TEST_THREADS ?= 1
test: setup
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The unit tier: no JVM, no model loaded or trained, no pipeline, server or browser (<= 60 s).
test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not integration" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The default tier in a random order (the seed is printed; rerun one with PYTEST_ARGS=-p ...).
test-random: setup
	$(BIN)/python -m pytest -m "not slow" -p random_order --random-order $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: no slow test collected

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Every hot path against its plain-library equivalent, side by side: one table, and
# benchmarks/results/<path>-<machine>.json. BENCH_ARGS=--quick for small sizes.
bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)
