# The two commands of the README:
#   make demo   install, then run the main job end to end on embedded defaults
#   make test   install, then run the whole test suite (SQLite and PostgreSQL)
# and, not part of `make test`:
#   make mutate mutation testing of the critical modules (docs/testing.md); MODULES=... for some
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test bench mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,fast]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/system-deps.sh

demo: install
	bash scripts/demo.sh

test: install system-deps
	VENV=$(VENV) bash scripts/test.sh

bench: install
	bash scripts/system-deps.sh bench
	@for b in bench/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

mutate: install
	$(BIN)/pip install -q -e '.[mutate]'
	$(BIN)/python scripts/mutate.py $(MODULES)

clean:
	rm -rf $(VENV) demo site maildir preview tests/artifacts build/mutate
