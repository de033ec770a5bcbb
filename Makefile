# Two entry points for newcomers: `make demo` and `make test`. Both build their own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel of torch for CI and laptops; on a GPU machine install torch first and set TORCH_SPEC= (empty).
TORCH_SPEC ?= torch==2.13.0
# with that CPU torch, `make test` adds Triton, whose interpreter runs the GPU kernels' tests on the CPU (>= 3.7:
# older interpreters fail under numpy >= 2.4); a GPU build of torch brings its own Triton.
TRITON_SPEC ?= triton>=3.7

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

.PHONY: install install-dev install-plot demo test clean

install: $(BIN)/python
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)" $(if $(TRITON_SPEC),"$(TRITON_SPEC)"))
	$(BIN)/pip install -q -e ".[dev]"

# the demo draws a figure: matplotlib comes with the `plot` extra
install-plot: $(BIN)/python
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e ".[plot]"

demo: install-plot
	bash examples/demo.sh $(BIN)

test: install-dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
