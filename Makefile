# vmpoolerd: `make run` for the demo, `make test` for the suite.
# Both install what is missing first (Debian packages as root, the venv).

VENV      := .venv
PYTHON    ?= python3
BIN       := $(VENV)/bin
RUN       := .run
REDIS_PORT ?= 6379
DEB_PACKAGES := redis-server redis-tools slapd ldap-utils wrk valgrind golang-go \
                golang-github-vmware-govmomi-dev chromium
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-packages run redis vcsim test bench clean

install: system-packages $(VENV)/.installed tests/vcsim/vcsim

# Installs only what is missing, so a second `make install` does nothing.
system-packages:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	touch $@

# The vSphere simulator (Go, offline, from Debian's govmomi sources).
tests/vcsim/vcsim: tests/vcsim/main.go tests/vcsim/build.sh
	sh tests/vcsim/build.sh

# A Redis for the demo on $(REDIS_PORT), unless one answers there already;
# run as the README's "Running Redis" says (every checkout on disk).
redis: install
	@mkdir -p $(RUN)
	@redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 || \
	  redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --daemonize yes \
	    --dir $(CURDIR)/$(RUN) --pidfile $(CURDIR)/$(RUN)/redis.pid \
	    --logfile $(CURDIR)/$(RUN)/redis.log --appendonly yes --appendfsync always
	@redis-cli -p $(REDIS_PORT) ping

# The demo's vCenter: the simulator on 127.0.0.1:8989, unless one answers there.
vcsim: install
	@mkdir -p $(RUN)
	@if ! (exec 3<>/dev/tcp/127.0.0.1/8989) 2>/dev/null; then \
	  tests/vcsim/vcsim -listen 127.0.0.1:8989 -inventory etc/vcsim-demo.json \
	    > $(RUN)/vcsim.log 2>&1 & echo $$! > $(RUN)/vcsim.pid; \
	  for i in $$(seq 50); do grep -q VCSIM_URL $(RUN)/vcsim.log && break; sleep 0.2; done; \
	fi
	@grep -h VCSIM_URL $(RUN)/vcsim.log 2>/dev/null || echo "vSphere simulator already on 127.0.0.1:8989"

run: redis vcsim
	$(BIN)/twistd -n --pidfile= vmpoolerd --config etc/vmpooler.yaml

test: install
	$(BIN)/ruff check vmpoolerd tests bench twisted
	$(BIN)/mypy vmpoolerd tests bench
	PYTHONPATH=$(CURDIR) $(BIN)/trial --temp-directory=$(RUN)/trial tests

bench: install
	PYTHONPATH=$(CURDIR) $(BIN)/python -m bench

clean:
	-[ -f $(RUN)/redis.pid ] && kill $$(cat $(RUN)/redis.pid)
	-[ -f $(RUN)/vcsim.pid ] && kill $$(cat $(RUN)/vcsim.pid)
	rm -rf $(RUN) $(VENV) *.egg-info tests/vcsim/vcsim
