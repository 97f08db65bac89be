# Course operations. Every target creates the virtual environment first when it is missing or
# older than requirements.txt / pyproject.toml. See README.md for what each one produces.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv book book-instructor notebooks check-notebooks grade autograde feedback export \
        system-deps test lint bench bench-grading clean

help:
	@echo "make book            set up .venv and build the learner book -> _build/html"
	@echo "make test            set up .venv and system packages, run lint and the test suite"
	@echo "make book-instructor the instructor edition (answers shown) -> _build/instructor"
	@echo "make notebooks       regenerate notebooks/ from solutions/ (nbgrader)"
	@echo "make grade A=02_forward_pass   sandboxed, parallel grading of _course/submitted"
	@echo "make autograde A=02_forward_pass | feedback A=... | export   stock nbgrader steps"
	@echo "make bench           benchmark the book build -> bench/RESULTS.md"
	@echo "make bench-grading   grading a 40-submission cohort four ways -> bench/RESULTS.md"

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

venv: $(STAMP)

book: $(STAMP)
	$(BIN)/bn-course book

book-instructor: $(STAMP)
	$(BIN)/bn-course book --edition instructor

notebooks: $(STAMP)
	$(BIN)/bn-course generate

check-notebooks: $(STAMP)
	$(BIN)/bn-course check-notebooks

grade: $(STAMP) system-deps
	$(BIN)/bn-course grade $(A)

autograde: $(STAMP)
	$(BIN)/bn-course autograde $(A)

feedback: $(STAMP)
	$(BIN)/bn-course feedback $(A)

export: $(STAMP)
	$(BIN)/bn-course export --to grades.csv

# Debian packages: chromium (book test), bubblewrap (grading sandbox), postgresql (gradebook
# test). Installs what is missing when run as root.
system-deps:
	bash .ci/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The suite in two phases: everything on TEST_WORKERS pytest-xdist workers (a test file stays on
# one worker, so its module fixtures are built once), then the tests that need the machine to
# themselves (marker `serial`), one at a time. The slowest tests are listed at the end of each
# phase, to keep the suite within its 30 minutes on 2 cores as content grows.
TEST_WORKERS ?= 2

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" --durations=40
	$(BIN)/python -m pytest -m serial --durations=5

bench: $(STAMP)
	$(BIN)/python bench/bench_book.py
	$(BIN)/python bench/bench_notebooks.py

bench-grading: $(STAMP) system-deps
	$(BIN)/python bench/bench_grading.py

clean:
	rm -rf _build _course
