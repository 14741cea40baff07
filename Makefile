# The two commands of the README. Both create .venv on first use and install echelon into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test reproduce bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned here: 2.13.0 is the CPU build this machine has on disk; the project's own
# looser range would otherwise let pip pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

reproduce: $(STAMP)
	$(BIN)/echelon reproduce --preset quick --out runs/quick --executor processes \
		--reference benchmarks/results/ppo_reference_v1.json

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_lp.py
	$(BIN)/python benchmarks/bench_policies.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_neural.py
	$(BIN)/python benchmarks/bench_vector_env.py
	$(BIN)/python benchmarks/parity_d3rlpy.py --data-scaling
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ppo_reference.py --steps 1000000 --seeds 3

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
