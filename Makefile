# autoenc: learned compression for Sentinel-1 SAR.  `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first, on its own, so that nothing pulls a multi-GB CUDA build on a
# CPU machine. GPU users override both, e.g.
#   make demo TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url <CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.autoenc-installed
PYTEST_ARGS ?= -n 2

.PHONY: help install demo test faults lint bench codec-demo codec-model codec-fast codec-parent compare compare-gpu gpu-check gpu-codec-check clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,codecs,onnx]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install autoenc (torch first)

demo: $(STAMP) ## install, then train the residual variant on the embedded synthetic data (<= 5 min on 2 CPU cores)
	rm -rf lightning_logs/demo
	$(VENV)/bin/autoenc fit --config configs/residual.yaml --config configs/demo.yaml

test: $(STAMP) ## install, then run the test suite (the fast fault-injection tests included)
	$(PY) -m pytest $(PYTEST_ARGS) -q -m "not faults"

faults: $(STAMP) ## the fault-injection batteries: kill -9 runs, crafted and damaged .aec files (CI runs them too)
	$(PY) -m pytest $(PYTEST_ARGS) -q -m faults -rA

lint: $(STAMP) ## ruff (style, docstrings) and mypy over the package
	$(PY) -m pip install -q -e ".[dev]"
	$(VENV)/bin/ruff check autoenc tests benchmarks
	$(VENV)/bin/ruff format --check autoenc tests benchmarks
	$(VENV)/bin/mypy autoenc

# The shipped default codec: trained from scratch on the comparison's synthetic GRD data
# (built first if missing), exported with its measured card. CODEC_OUT=<dir> writes the
# export elsewhere, e.g. to check that a fresh run reproduces the shipped card:
#   make codec-model CODEC_OUT=/tmp/again CODEC_REPORT=/tmp/again/report CODEC_README= && \
#   .venv/bin/python -m autoenc.pretrained.card autoenc/pretrained/wavelet-grdh-parent.json /tmp/again/wavelet-grdh-parent.json
CODEC_OUT ?= autoenc/pretrained
CODEC_LOGS ?= lightning_logs/codec
CODEC_REPORT ?= reports/codec
CODEC_README ?= README.md
# Decode-time default of the shipped codec (no weight, no bit): despeckling strength 0.25 at
# qualities 0-4, at or below the speckle cap of its data, faithful above.
CODEC_DESPECKLE ?= [0.25,0.25,0.25,0.25,0.25,0,0,0,0,0,0,0]

codec-model: $(STAMP) ## train wavelet-grdh-int from scratch, export it and derive the shipped default from it, with their cards (~40 min on 2 CPU cores)
	$(VENV)/bin/autoenc compare configs/compare/cpu.yaml --data-only
	rm -rf $(CODEC_LOGS)
	$(VENV)/bin/autoenc fit --config configs/codec.yaml --config configs/codec_cpu.yaml \
		--trainer.logger.init_args.save_dir=$(dir $(CODEC_LOGS)) \
		--trainer.logger.init_args.name=$(notdir $(CODEC_LOGS)) \
		--checkpoint.dirpath=$(CODEC_LOGS)/checkpoints
	$(VENV)/bin/autoenc export $(CODEC_LOGS)/checkpoints/last.ckpt --name wavelet-grdh-int \
		--out-dir $(CODEC_OUT) --report $(CODEC_REPORT) --overwrite \
		--model-arg 'despeckle=$(CODEC_DESPECKLE)'
	$(MAKE) codec-fast codec-parent

# The previous default, wavelet-grdh-fast: wavelet-grdh-int with its two finest levels coded in
# one stage by their anchor nets (rest nets dropped; no training; issue 14), with its card.
codec-fast: $(STAMP) ## derive wavelet-grdh-fast (the previous default) from wavelet-grdh-int (~3 min) and measure its card
	$(VENV)/bin/autoenc export $(CODEC_OUT)/wavelet-grdh-int.safetensors --name wavelet-grdh-fast \
		--one-stage 2 --command "make codec-fast" --out-dir $(CODEC_OUT) --report $(CODEC_REPORT)-fast \
		--overwrite

# The default itself, wavelet-grdh-parent: as wavelet-grdh-fast, and the two finest levels'
# scales predicted at their parents' resolution by new 16-channel nets fitted here on the
# training split (4,000 seeded steps, ~4 min; every other weight kept; issue 14), with its card.
codec-parent: $(STAMP) ## derive the shipped default wavelet-grdh-parent from wavelet-grdh-int and measure its card (~9 min on 2 CPU cores)
	$(VENV)/bin/autoenc compare configs/compare/cpu.yaml --data-only
	$(VENV)/bin/autoenc export $(CODEC_OUT)/wavelet-grdh-int.safetensors --name wavelet-grdh-parent \
		--one-stage 2 --at-parent 2 --command "make codec-parent" --out-dir $(CODEC_OUT) \
		--report $(CODEC_REPORT) $(if $(CODEC_README),--readme $(CODEC_README)) --overwrite

CODEC_CKPT ?= lightning_logs/hyperprior_demo/checkpoints/last.ckpt

$(CODEC_CKPT): | $(STAMP)
	$(VENV)/bin/autoenc fit --config configs/hyperprior.yaml --config configs/hyperprior_demo.yaml

codec-demo: $(CODEC_CKPT) ## train the demo-scale hyperprior codec (once; gpu-codec-check uses it)

BENCH_CODEC ?= autoenc/pretrained/wavelet-grdh-parent.safetensors

bench: $(STAMP) ## run the benchmarks (prints measured ratios; the codec's is the shipped model)
	$(PY) benchmarks/bench_loading.py
	$(PY) benchmarks/bench_overhead.py
	$(PY) benchmarks/bench_prepare.py --float
	$(PY) benchmarks/bench_codec.py --ckpt $(BENCH_CODEC)
	$(VENV)/bin/autoenc compare configs/compare/cpu.yaml --data-only
	$(PY) benchmarks/bench_codec_train.py
	$(PY) benchmarks/bench_eval.py --out benchmarks/results

compare: $(STAMP) ## train 4 variants + hyperprior at 3 rates, evaluate vs JPEG 2000, report (~20 min, 2 CPU cores)
	$(VENV)/bin/autoenc compare configs/compare/cpu.yaml --readme README.md

compare-gpu: $(STAMP) ## the same comparison at GPU scale (configs/compare/gpu.yaml)
	$(VENV)/bin/autoenc compare configs/compare/gpu.yaml

gpu-check: $(STAMP) ## GPU throughput/memory check; writes benchmarks/results/gpu-<date>.json
	$(PY) benchmarks/gpu_check.py --out benchmarks/results

gpu-codec-check: $(STAMP) ## GPU codec check (10,000² scene, GPU->CPU decode); needs a hyperprior checkpoint
	$(PY) benchmarks/gpu_codec_check.py --out benchmarks/results

clean: ## remove build outputs, logs and generated data (keeps .venv)
	rm -rf lightning_logs data/synthetic data/compare predictions build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
