# The two commands of the README: `make demo` and `make test`.
# Both install what they need on a fresh Debian machine first.

VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP := $(VENV)/bin/python -m pip

.PHONY: setup system-deps demo test bench screenshots clean

setup: system-deps $(VENV)/.installed

# Debian packages: the Mosquitto broker (tests start their own on free ports)
# Chromium (page flows are tested in a real headless browser), and systemd and
# openssl (the Ansible roles' units and certificates are checked with them).
DEBS := mosquitto mosquitto-clients chromium systemd openssl

system-deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing ..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
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

screenshots: setup
	$(VENV)/bin/python scripts/screenshots.py

bench: setup
	$(VENV)/bin/lanehub bench sync

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
