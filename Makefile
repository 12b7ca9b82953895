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

# The model that ships with gliomics (gliomics/pretrained/glioma_v2), in three steps:
# 1. the phantom model: the demo's phantom cohort and budget with the domain-randomised preset;
# 2. its cross-validated figures on the 11 real cases with manual references: per fold (3), fine-tuned on the 11 or
#    12 other real cases next to the phantoms, scored on the held-out fold (two folds at a time, one core each);
# 3. the shipped model: the phantom model fine-tuned on all 15 real cases, evaluated on an unseen phantom site and
#    packaged with its model card (the cross-validated real-case figures in it).
PRETRAINED_WORK ?= pretrained_work
REAL_CASES ?= ../shared/real/cases
pretrained: $(STAMP)
	$(BIN)/gliomics demo --preset mgmtnet_cpu_randomised --out $(PRETRAINED_WORK) --no-progress
	pids=""; for part in 0 1; do taskset -c $$part $(BIN)/python benchmarks/studies/few_real_labels.py run \
	  --phantoms $(PRETRAINED_WORK)/cohort_train --init $(PRETRAINED_WORK)/run --work $(PRETRAINED_WORK)/real_cv \
	  --cases $(REAL_CASES) --sizes 11 --shard $$part/2 & pids="$$pids $$!"; done; \
	  for pid in $$pids; do wait $$pid || exit 1; done
	$(BIN)/python benchmarks/studies/few_real_labels.py pool --work $(PRETRAINED_WORK)/real_cv --cases $(REAL_CASES) \
	  --size 11
	$(BIN)/python benchmarks/studies/few_real_labels.py fit-all --phantoms $(PRETRAINED_WORK)/cohort_train \
	  --init $(PRETRAINED_WORK)/run --cases $(REAL_CASES) --out $(PRETRAINED_WORK)/tuned
	$(BIN)/gliomics predict -i $(PRETRAINED_WORK)/cohort_external -o $(PRETRAINED_WORK)/tuned_external/predictions \
	  -m $(PRETRAINED_WORK)/tuned --tta --no-progress --overwrite
	$(BIN)/gliomics evaluate --pred $(PRETRAINED_WORK)/tuned_external/predictions --ref $(PRETRAINED_WORK)/cohort_external \
	  --markers $(PRETRAINED_WORK)/cohort_external/markers.csv --out $(PRETRAINED_WORK)/tuned_external/evaluation
	$(BIN)/gliomics package-model -m $(PRETRAINED_WORK)/tuned \
	  -e "phantom site G=$(PRETRAINED_WORK)/tuned_external/evaluation=30 phantoms of a site it never saw" \
	  -e "real cases, cross-validated=$(PRETRAINED_WORK)/real_cv/cv_n11/evaluation=the 11 BraTS 2018 cases of ../shared/real/cases with manual references, each scored by a model fine-tuned on 11 other real cases (3 folds), never on itself"

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
