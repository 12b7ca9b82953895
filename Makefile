# Every target builds its own virtual environment from pyproject.toml: a fresh machine needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output

.PHONY: install browser test test-all lint demo pretrained bench mutation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium renders the HTML reports in the browser test of tests/report; where it cannot be installed that
# test is skipped: this step never fails the build.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq chromium || \
	    (apt-get update -qq && apt-get install -y -qq chromium) || \
	    (sudo -n apt-get update -qq && sudo -n apt-get install -y -qq chromium)) >/dev/null 2>&1 || \
	  echo "chromium unavailable: the browser test of the HTML reports will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -m ''

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

demo: $(STAMP)
	$(BIN)/python -m gliomics.cli.demo --out $(DEMO_DIR)

# The model that ships with gliomics (gliomics/pretrained/glioma_v1): the demo's phantom cohort and budget with the
# domain-randomised preset, evaluated on an unseen phantom site and on the real cases beside the repository, packaged
# with its model card. About 30 minutes on 2 cores.
PRETRAINED_WORK ?= pretrained_work
REAL_CASES ?= ../shared/real/cases
pretrained: $(STAMP)
	$(BIN)/gliomics demo --preset mgmtnet_cpu_randomised --out $(PRETRAINED_WORK) --no-progress
	$(BIN)/gliomics predict -i $(REAL_CASES) -o $(PRETRAINED_WORK)/real/predictions -m $(PRETRAINED_WORK)/run --tta \
	  --no-progress --overwrite
	$(BIN)/gliomics evaluate --pred $(PRETRAINED_WORK)/real/predictions --ref $(REAL_CASES) \
	  --markers $(REAL_CASES)/markers.csv --out $(PRETRAINED_WORK)/real/evaluation --rule brats2024 --montage
	$(BIN)/gliomics package-model -m $(PRETRAINED_WORK)/run \
	  -e "phantom site G=$(PRETRAINED_WORK)/evaluation_external=30 phantoms of a site it never saw" \
	  -e "real cases=$(PRETRAINED_WORK)/real/evaluation=the 15 BraTS and TCGA cases of ../shared/real/cases (11 manual references, 4 algorithms'), none seen in training"

bench: $(STAMP)
	$(BIN)/python benchmarks/speed/bench_phantom.py

# Mutation testing (not in the default suite): every mutant by default, which takes hours on 2 cores;
# MUTATION_FRACTION=0.15 draws that share of each file's mutants (seed MUTATION_SEED). Report: benchmarks/results/mutation.md
MUTATION_FRACTION ?= 1
MUTATION_SEED ?= 0
mutation: $(STAMP)
	$(BIN)/python benchmarks/tools/mutation.py run --fraction $(MUTATION_FRACTION) --seed $(MUTATION_SEED)
	$(BIN)/python benchmarks/tools/mutation.py report

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(PRETRAINED_WORK) .pytest_cache mutants
