# Two commands do everything on a fresh machine (Python 3.10+ and pip reaching a PyPI mirror):
#   make demo   - set up .venv if needed, then run the main job on the embedded default
#   make test   - set up .venv if needed, then run the test suite (everything; what CI runs)
#   make test-fast - the tier for the edit loop: no side environments, engines, browser, training runs
#                    or peer benchmarks (pytest markers, pyproject.toml)
VENV ?= .venv
PY := $(VENV)/bin/python

HEAVY := side_envs or engines or browser or trainings or peers

.PHONY: setup test test-fast demo serve-env
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[serve,dev]'
	# The demo's browser test drives Debian's Chromium (playwright's own browser download is not used).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser demo test will fail"
	touch $@

test: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -q tests --durations=25

test-fast: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pytest -q tests -m "not ($(HEAVY))" --durations=10

demo: setup
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m vlmtune.cli demo

# vLLM's CPU build in its own environment (~/.cache/vlmtune/engines; about 2 minutes and 3.5 GB, once);
# `vlmtune serve` also builds it on first use.
serve-env: setup
	$(PY) -m vlmtune.side_envs
