# The two commands of the README: `make demo` and `make test`.
# Both install what they need on a fresh Debian machine first.

VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP := $(VENV)/bin/python -m pip

.PHONY: setup system-deps demo test bench clean

setup: system-deps $(VENV)/.installed

# Debian packages: the Mosquitto broker (tests start their own on free ports).
system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
		echo "Installing Debian's mosquitto ..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq mosquitto mosquitto-clients; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/lanehub demo

test: setup
	$(VENV)/bin/python -m pytest -q

bench: setup
	$(VENV)/bin/lanehub bench sync

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
