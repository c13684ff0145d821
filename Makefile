# Two commands for a fresh Debian/Ubuntu machine:
#   make run    install everything and start the daemon in the foreground
#   make test   install everything and run lint, types and the whole test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_PACKAGES := python3-venv libportaudio2 jackd2 libjack-jackd2-0 fluidsynth fluid-soundfont-gm timgm6mb-soundfont \
  pipewire pipewire-bin wireplumber pipewire-pulse pipewire-jack pipewire-alsa pulseaudio-utils dbus
# systemd-analyze, for the tests of the user unit (verify, security); a container may lack it
SYSTEM_PACKAGES += systemd

.PHONY: run test test-pipewire system venv lint bench clean

system:
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
	  echo "jackd2 jackd/tweak_rt_limits boolean false" | $(SUDO) debconf-set-selections; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check mxfd tests benchmarks
	$(VENV)/bin/mypy

# The jackd suite, then the PipeWire one in a run of its own: one sound server per run.
test: system venv lint
	$(VENV)/bin/pytest -q
	$(VENV)/bin/pytest -q -m pipewire

# The end-to-end tests on a headless PipeWire alone (tests/pipewire.py starts it).
test-pipewire: system venv
	$(VENV)/bin/pytest -q -m pipewire

run: system venv
	$(VENV)/bin/mxfd run

# MIDI files made by others, for bench_sf_render.py --real
BENCH_PACKAGES := planetblupi-music-midi

bench: system venv
	@dpkg -s $(BENCH_PACKAGES) >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(BENCH_PACKAGES)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
