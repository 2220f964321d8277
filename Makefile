# The two commands of the README: `make demo` and `make test`.
# Both install what they need on a fresh Debian machine first.

VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP := $(VENV)/bin/python -m pip

.PHONY: setup system-deps demo lint test bench screenshots clean

setup: system-deps $(VENV)/.installed

# Debian packages: the Mosquitto broker (tests start their own on free ports)
# Chromium (page flows are tested in a real headless browser), systemd and
# openssl (the Ansible roles' units and certificates are checked with them), and
# what boots real Debian boxes for the provisioning test: debootstrap,
# systemd-nspawn, nftables (NAT for the boxes), iproute2 and the SSH client;
# PostgreSQL (tests use a real server: scripts/test-postgres.sh starts it).
DEBS := mosquitto mosquitto-clients chromium systemd openssl \
	debootstrap systemd-container nftables iproute2 openssh-client postgresql

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

# The demo needs only the broker and its command-line clients (the "Try:" lines use
# mosquitto_pub and mosquitto_sub) from Debian. `make demo DEMO_ARGS="--dir demo"` keeps its folder.
DEMO_DEBS := mosquitto mosquitto-clients
DEMO_ARGS ?=

demo:
	@$(MAKE) --no-print-directory system-deps DEBS="$(DEMO_DEBS)"
	@$(MAKE) --no-print-directory $(VENV)/.installed
	$(VENV)/bin/lanehub demo $(DEMO_ARGS)

# The provisioning test (booted Debian boxes, minutes of apt and Ansible) runs
# beside the rest of the suite, in its own pytest with its own temp directory,
# at the lowest CPU and I/O priority (the boxes inherit it): it fills the time
# the rest of the suite spends waiting instead of slowing it. The rest runs in two
# workers, a test file per worker at a time (most of its time is spent waiting on
# brokers and processes, not computing). Both must pass.
PROVISIONING_LOG := .provisioning-test.log

# Lint (ruff: pyflakes, pycodestyle, import order, bugbear) and types (mypy; the wire
# and the replication engine with every function typed). Configured in pyproject.toml.
# `make test` runs both too: ruff first (a second), mypy beside the suite (a minute of
# CPU while the suite mostly waits on brokers and processes).
MYPY_LOG := .mypy.log

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup
	$(VENV)/bin/ruff check .
	@sh scripts/test-postgres.sh
	@nice -n 10 $(VENV)/bin/mypy >$(MYPY_LOG) 2>&1 & types=$$!; \
	nice -n 19 ionice -c 3 $(VENV)/bin/python -m pytest -q -m provisioning -p no:cacheprovider \
		--basetemp=$(CURDIR)/.pytest-provisioning >$(PROVISIONING_LOG) 2>&1 & provisioning=$$!; \
	$(VENV)/bin/python -m pytest -q -m "not provisioning" -n 2 --dist loadfile; rest=$$?; \
	wait $$types; typed=$$?; \
	echo "----- mypy -----"; cat $(MYPY_LOG); \
	wait $$provisioning; prov=$$?; \
	echo "----- provisioning test (tests/test_provisioning.py) -----"; cat $(PROVISIONING_LOG); \
	[ $$rest -eq 0 ] && [ $$typed -eq 0 ] && [ $$prov -eq 0 ]

screenshots: setup
	$(VENV)/bin/python scripts/screenshots.py

bench: setup
	$(VENV)/bin/lanehub bench sync

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .pytest-provisioning $(PROVISIONING_LOG) $(MYPY_LOG) .mypy_cache .ruff_cache
