# The verbs of imgload-benchmarks. `make bench` and `make test` bootstrap everything.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
ASV    := $(BIN)/asv
STAMP  := $(VENV)/.installed
# the site's third-party scripts (site/package-lock.json), served from the site itself
SITE_JS := site/node_modules/.package-lock.json
# extra arguments for asv run, e.g. ASV_ARGS='-b SmallImages'; FIND_ARGS for `imgload ladder find`
ASV_ARGS ?=
FIND_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help bench bench-torch bench-ml quick test check data machine publish preview report clean venv ladder find merge memo

# Every stack in asv.conf.json is built on CPython $(STACK_PYTHON) (README, "Set up"); asv finds it as
# python$(STACK_PYTHON) on PATH or as the Python it runs under, .venv's. So `make bench` and `make test`
# check the interpreter .venv is made from (.venv's own once it exists) before anything is built:
# a machine without it gets one line saying so, not a half-built .venv or a failing asv. The same
# holds for every target that builds stacks: the opt-in torch stack and the ladders' rungs.
STACK_PYTHON := 3.11
STACK_GOALS  := bench test bench-torch bench-ml ladder find
venv_python = $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
ifneq ($(filter $(STACK_GOALS),$(MAKECMDGOALS)),)
  found_python := $(shell $(venv_python) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
  python_hint := the benchmark stacks are built for CPython $(STACK_PYTHON) (README: Set up); install it, or $(if $(wildcard $(BIN)/python),remove $(VENV) and )point PYTHON at one: make $(firstword $(filter $(STACK_GOALS),$(MAKECMDGOALS))) PYTHON=/path/to/python$(STACK_PYTHON)
  ifeq ($(found_python),)
    $(error $(venv_python) not found: $(python_hint))
  else ifneq ($(found_python),$(STACK_PYTHON))
    $(error $(venv_python) is Python $(found_python), but $(python_hint))
  endif
endif

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[decoders,bench,data,test,report]'
	touch $@

venv: $(STAMP)

# the datasets the suite will read: IMGLOAD_DATASET / IMGLOAD_LARGE_DATASET, else the offline defaults
data: $(STAMP)
	$(BIN)/python -m imgload data prepare $${IMGLOAD_DATASET:-synthetic-cifar10}
	$(BIN)/python -m imgload data prepare $${IMGLOAD_LARGE_DATASET:-synthetic-large}
	$(BIN)/python -m imgload data prepare $${IMGLOAD_FORMATS_DATASET:-synthetic-formats}
	$(BIN)/python -m imgload data prepare $${IMGLOAD_MEDIUM_DATASET:-synthetic-1024}
	$(BIN)/python -m imgload data prepare $${IMGLOAD_CAMERA_DATASET:-synthetic-12mp}

machine: $(STAMP)
	$(ASV) machine --yes > /dev/null

# every library stack of asv.conf.json, then the HTML site
bench: data machine
	$(ASV) run --show-stderr --record-samples --interleave-rounds HEAD^! $(ASV_ARGS)
	$(MAKE) --no-print-directory publish
	@echo "results: .asv/results   site: .asv/html/index.html   (make preview serves it)"

# the opt-in PyTorch stack (asv.torch.conf.json, torch's CPU build pinned): a real DataLoader (bench_dataloader)
# beside the suite's own pools on large JPEGs (ProcessTransfer) and the sample record, then the site. make bench
# never runs it. Where the package index has no torch==2.13.0+cpu: TORCH_INDEX=https://download.pytorch.org/whl/cpu
bench-torch: data machine
	$(if $(TORCH_INDEX),PIP_EXTRA_INDEX_URL=$(TORCH_INDEX) )$(ASV) run --config asv.torch.conf.json --show-stderr --record-samples --interleave-rounds HEAD^! -b bench_dataloader -b bench_sample -b ProcessTransfer $(ASV_ARGS)
	$(MAKE) --no-print-directory publish
	@echo "results: .asv/results (stack 2026-11-torch)   site: .asv/html/index.html   report: make report"

# the opt-in ML decoders stack (asv.ml.conf.json): torchvision's and TensorFlow's decoders beside the
# newest stack's NumPy, Pillow and OpenCV, in bench_codecs and bench_formats, then the site. About 7 GB
# installed (torch 2.14.1 brings CUDA's libraries even for CPU decoding), so make bench never runs it.
bench-ml: data machine
	$(ASV) run --config asv.ml.conf.json --show-stderr --record-samples --interleave-rounds HEAD^! -b bench_codecs -b bench_formats -b bench_sample $(ASV_ARGS)
	$(MAKE) --no-print-directory publish
	@echo "results: .asv/results (stack 2026-11-ml)   site: .asv/html/index.html   report: make report"

# the whole grid once, in .venv's own stack, on a few files per call: a smoke run, nothing saved
quick: data machine
	IMGLOAD_PROFILE=smoke $(ASV) run --quick --dry-run --show-stderr -E existing:$(CURDIR)/$(BIN)/python $(ASV_ARGS)

# release ladder NAME (ladders/NAME.toml, or a path to one): build its repo, run every release, publish its site
ladder: data machine $(SITE_JS)
	@test -n "$(NAME)" || { echo "usage: make ladder NAME=pillow [ASV_ARGS='-b LargeImages']" >&2; exit 2; }
	conf=$$($(BIN)/python -m imgload ladder build $(NAME)) && dir=$$(dirname $$conf) && \
	$(ASV) run --config $$conf --show-stderr --record-samples --no-interleave-rounds --skip-existing HASHFILE:$$dir/rungs.txt $(ASV_ARGS) && \
	$(ASV) publish --config $$conf && $(BIN)/python -m imgload site --html $$dir/html && \
	echo "results: $$dir/results   site: $$dir/html/index.html   (asv preview --config $$conf)"

# asv find over a built ladder, then a verdict: every level change of the ladder and the release asv find
# names are measured again, interleaved, until decided; INVERT=1 looks for a speedup, REPEAT=N samples per batch
find: machine
	@test -n "$(NAME)" -a -n "$(BENCH)" || { echo "usage: make find NAME=pillow BENCH=regex [INVERT=1] [REPEAT=12]" >&2; exit 2; }
	$(BIN)/python -m imgload ladder find $(NAME) "$(BENCH)" $(if $(INVERT),--invert) $(if $(REPEAT),--repeat $(REPEAT)) $(FIND_ARGS)

$(SITE_JS): site/package-lock.json
	npm ci --prefix site --ignore-scripts --no-audit --no-fund

# ruff's lint and format checks (pyproject's [tool.ruff]), rewriting nothing: `ruff format .` fixes the format
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# make check, then the whole test suite
test: check $(STAMP) $(SITE_JS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the site, self-contained: no CDN requests, so it also works offline; with the library stacks side by side
# (the report's tables and plots) at .asv/html/compare/index.html, linked from asv's navbar and front page
publish: $(STAMP) $(SITE_JS)
	$(ASV) publish
	$(BIN)/python -m imgload site --html .asv/html --results .asv/results

preview: $(STAMP)
	$(ASV) preview

# library stacks side by side, per machine: .asv/report/report.md and its PNG plots
report: $(STAMP)
	$(BIN)/python -m imgload report --results .asv/results --out .asv/report

# the memo behind this suite again (imgload/memo.py): its two experiments on every training image of
# IMGLOAD_DATASET (IMGLOAD_PROFILE=smoke: 16 of them), in .venv's own stack; .asv/memo/memo.md
memo: $(STAMP)
	$(BIN)/python -m imgload data prepare $${IMGLOAD_DATASET:-synthetic-cifar10}
	$(BIN)/python -m imgload memo

# other machines' .asv folders (or their results/) into ours: results and build records, each file checked
# first; one that differs is kept and named, FORCE=1 overwrites it (README: More than one machine)
merge: $(STAMP)
	@test -n "$(DIRS)" || { echo "usage: make merge DIRS='../runner-a/.asv ../runner-b/.asv' [FORCE=1]" >&2; exit 2; }
	$(BIN)/python -m imgload results merge $(DIRS) $(if $(FORCE),--force)

# the targets and the variables they read, in a few lines (README: Other make targets)
help:
	@echo "make bench      every stack of asv.conf.json on the default data, then the site (ASV_ARGS='-b SmallImages')"
	@echo "make bench-torch  the opt-in PyTorch stack: a real DataLoader beside the suite's pools (TORCH_INDEX=...)"
	@echo "make bench-ml   the opt-in ML decoders stack: torchvision and TensorFlow beside the other decoders"
	@echo "make test       make check, then the test suite (PYTEST_ARGS='-k verdict')"
	@echo "make quick      the whole grid once in .venv's own stack, a few files per call, nothing saved"
	@echo "make data       prepare IMGLOAD_DATASET / IMGLOAD_LARGE_DATASET (default: the offline sets)"
	@echo "make report     stacks side by side: .asv/report/report.md and plots"
	@echo "make publish    the self-contained asv site in .asv/html, stacks compared at compare/; make preview"
	@echo "make ladder NAME=pillow [ASV_ARGS=...]      every release of one library (ladders/)"
	@echo "make find NAME=pillow BENCH=regex [INVERT=1] [REPEAT=12]   which release changed it"
	@echo "make merge DIRS='../runner-a/.asv ...' [FORCE=1]   other machines' results into .asv/"
	@echo "make memo       the memo's two experiments on the whole training set: .asv/memo/memo.md"
	@echo "make check      ruff lint and format checks; make clean drops results and environments"
	@echo "variables: PYTHON (a CPython $(STACK_PYTHON)), IMGLOAD_DATASET, IMGLOAD_LARGE_DATASET, IMGLOAD_DATA_DIR,"
	@echo "           IMGLOAD_PROFILE (default, full, smoke), IMGLOAD_GRID=wide, IMGLOAD_MIRROR"

# results and environments go; prepared data stays (rm -rf .data to drop it)
clean:
	rm -rf .asv/env .asv/html .asv/results .asv/envinfo .asv/report
