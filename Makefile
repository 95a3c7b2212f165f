# Every target installs what it needs, idempotently, so a fresh Debian machine
# (as root) goes from clone to demo or test with one command.
VENV      := .venv
PY        := $(VENV)/bin/python
PYTHON    ?= python3
# strace: the suite's Docker Hub guard test watches the CLI and moord with it.
APT_PKGS  := busybox-static runc crun libseccomp2 iproute2 nftables procps hyperfine docker.io docker-compose docker-registry skopeo wrk openssl gcc libc6-dev zsh strace \
             mmdebstrap dpkg-dev qemu-system-x86 qemu-utils e2fsprogs openssh-client cpio chromium containernetworking-plugins containerd \
             linux-perf
STAMP_APT := $(VENV)/.apt-stamp
STAMP_PIP := $(VENV)/.pip-stamp

.PHONY: deps demo test lint bench clean cri-proto

MOOR_INIT := moorage/daemon/data/moor-init

deps: $(STAMP_APT) $(STAMP_PIP) $(MOOR_INIT)

# moor-init is bound into --init containers, whose rootfs has no libc of ours:
# static, built here once so the daemon never needs a compiler.
$(MOOR_INIT): $(MOOR_INIT).c $(STAMP_APT)
	@gcc -static -Os -s -o $@.tmp $< && mv $@.tmp $@

$(STAMP_APT): Makefile
	@mkdir -p $(VENV)
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

# compat mode: setuptools' default editable finder costs ~10 ms on every start.
$(STAMP_PIP): pyproject.toml $(MOOR_INIT) $(wildcard bin/*)
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	@# pip writes "#!<python>" without the scripts' -S (see bin/_moor_paths.py).
	@sed -i '1s|^\(#!.*python[0-9.]*\)$$|\1 -S|' $(VENV)/bin/moor $(VENV)/bin/moor-compose \
		$(VENV)/bin/moor-runtime
	@$(PY) -m compileall -q moorage $(VENV)/bin/_moor_paths.py >/dev/null
	@touch $@

# The CRI's generated modules are committed; this remakes them after api.proto changes.
cri-proto: deps
	@PYTHON=$(PY) sh scripts/cri_proto.sh

demo: deps
	@$(PY) scripts/demo.py

lint: deps
	$(VENV)/bin/ruff check moorage tests bench
	$(VENV)/bin/lint-imports

# Modules run on TEST_WORKERS pytest-xdist workers (tests/scheduling.py): most tests wait on
# daemons, VMs and peers rather than the CPU, so more workers than cores pay.
TEST_WORKERS ?= 4

test: lint
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20 tests

# Byte-compile first: PYTHONDONTWRITEBYTECODE may be set, and timing the
# compiler is not timing the runtime.
bench: deps
	@$(PY) -m compileall -q moorage >/dev/null
	$(PY) bench/runtime.py
	$(PY) bench/engine.py
	$(PY) bench/cli.py
	$(PY) bench/pull.py
	$(PY) bench/registry.py
	$(PY) bench/operations.py
	$(PY) bench/volumes.py
	$(PY) bench/logs.py
	$(PY) bench/network.py
	$(PY) bench/build.py
	$(PY) bench/compose.py
	$(PY) bench/cri.py
	$(PY) bench/dashboard.py
	$(PY) bench/machine.py

clean:
	rm -rf $(VENV)
