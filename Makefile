# Two commands on a fresh machine with Python 3.11 and pip:
#   make demo   set up .venv and analyse the committed audio_fixtures/ (records in out/demo/)
#   make test   set up .venv and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24" "setuptools<81" wheel
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# audio_fixtures/ holds deliberately bad files too (silence, a 1 s clip): their error records are
# part of the demo, so exit code 1 ("some calls failed") still counts as a successful demo.
demo: setup
	$(VENV)/bin/callqa analyze audio_fixtures --out out/demo --workers 2 || [ $$? -eq 1 ]

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf out .pytest_cache
