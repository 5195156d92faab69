# the first Python >= 3.11 on the PATH; override with `make PY=/path/to/python3.12 ...`
ifeq ($(origin PY), undefined)
PY := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# no debconf questions: CI has no terminal
APT := DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: demo test bench venv mosquitto browser clean lint

$(STAMP): pyproject.toml
	@[ -n "$(PY)" ] || { echo "boltrouter needs Python >= 3.11 (python3 is older or missing):" \
	  "install one, or run make PY=/path/to/python3.11"; exit 1; }
	@$(PY) -m venv $(VENV) >/dev/null 2>&1 || { rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing the Debian package python3-venv (needed to create $(VENV))"; \
	    ($(APT) install -y -qq python3-venv >/dev/null 2>&1 || ($(APT) update -qq && $(APT) install -y -qq python3-venv)) \
	      && $(PY) -m venv $(VENV); \
	  else echo "$(PY) cannot create a virtual environment: sudo apt-get install python3-venv"; exit 1; fi; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/boltrouter run --config config.example.yaml

mosquitto:
	@{ command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } && command -v openssl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing the Debian packages mosquitto and openssl (needed by the MQTT tests)"; \
	    ($(APT) install -y -qq mosquitto openssl >/dev/null 2>&1 || ($(APT) update -qq && $(APT) install -y -qq mosquitto openssl)) \
	      || echo "mosquitto and openssl could not be installed: the MQTT tests will be skipped"; \
	  else echo "mosquitto or openssl is missing: sudo apt-get install mosquitto openssl (MQTT tests will be skipped)"; fi; }

browser:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing the Debian packages chromium and chromium-driver (needed by the status page test)"; \
	    ($(APT) install -y -qq chromium chromium-driver >/dev/null 2>&1 || ($(APT) update -qq && $(APT) install -y -qq chromium chromium-driver)) \
	      || echo "chromium could not be installed: the status page test will be skipped"; \
	  else echo "chromium is missing: sudo apt-get install chromium chromium-driver (the status page test will be skipped)"; fi; }

test: $(STAMP) mosquitto browser
	$(BIN)/python -m pytest -q

bench: $(STAMP) mosquitto
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check boltrouter plugins tests bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
