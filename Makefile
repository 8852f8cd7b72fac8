# Two commands do all the set-up on a fresh machine:
#   make demo   fuse the built-in example (writes demo-out/)
#   make test   run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/focusfuse: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

venv: $(BIN)/focusfuse

demo: venv
	$(BIN)/focusfuse demo --out demo-out

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-out
