# The two commands a new checkout needs:
#   make run    builds everything and runs the demo (tracking demo)
#   make test   builds everything and runs every test
# Both install what is missing first: the wasm32-wasip2 Rust target, and for
# `make test` the pinned wasmtime CLI, wac and wasm-tools (into .tools) and
# Debian's clang-19 and wasi-libc, which the storage plug's SQLite needs.

CARGO   ?= cargo
, := ,
GUEST   := target/wasm32-wasip2/release/tracking_guest.wasm
TRACKING := target/release/tracking
DB      ?= var/tracking.db
PLUG    := target/wasm32-wasip2/release/tracking_plug.wasm
STANDALONE := target/standalone/tracking-standalone.wasm

.PHONY: run test bench guest host setup lint clean plug standalone wasm-c-toolchain scripts \
	tools tool-wasm-tools tool-wac tool-wasmtime

run: guest host
	$(TRACKING) --db $(DB) demo

# `standalone` also installs the wasmtime CLI and wasm-tools that the
# standalone tests drive.
test: guest standalone scripts
	$(CARGO) test --release --workspace

# The component: built once, found by the host and the tests at $(GUEST).
guest: setup
	$(CARGO) build --release --target wasm32-wasip2 -p tracking-guest -p rogue-guest

host:
	$(CARGO) build --release -p tracking-host

setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 \
		|| rustup target add wasm32-wasip2

lint: setup wasm-c-toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --release --target wasm32-wasip2 -p tracking-guest -p rogue-guest -p tracking-plug $(SCRIPT_CRATES) -- -D warnings

# The ratio table of tests/benches/ratios.rs (a few minutes; the purge
# benchmark writes about 1 GB under target/bench).
bench: guest scripts
	$(CARGO) bench -p tracking-tests --bench ratios
	$(CARGO) bench -p tracking-tests --bench scripts

# ---------------------------------------------------------------------------
# Status scripts (README: "Writing a status script"): the two examples and
# the misbehaving ones tests/tests/scripts.rs runs. The JavaScript example is
# built with componentize-js from npm; `npm ci` runs only when its
# node_modules is missing.
SCRIPT_CRATES := -p status-summary-rs -p script-rogue-misbehave -p script-rogue-writer \
	-p script-rogue-filesystem
JS_SCRIPT_DIR := examples/scripts/status-summary-js
JS_SCRIPT     := target/scripts/status-summary-js.wasm

scripts: setup $(JS_SCRIPT)
	$(CARGO) build --release --target wasm32-wasip2 $(SCRIPT_CRATES)

$(JS_SCRIPT_DIR)/node_modules:
	cd $(JS_SCRIPT_DIR) && npm ci --no-audit --no-fund

$(JS_SCRIPT): $(JS_SCRIPT_DIR)/status-summary.js $(JS_SCRIPT_DIR)/build.mjs \
		$(JS_SCRIPT_DIR)/package-lock.json wit/script.wit wit/status.wit wit/types.wit \
		| $(JS_SCRIPT_DIR)/node_modules
	cd $(JS_SCRIPT_DIR) && node build.mjs $(CURDIR)/$(JS_SCRIPT)

clean:
	$(CARGO) clean
	rm -rf var

# ---------------------------------------------------------------------------
# Command-line tools the standalone component is composed and tested with,
# installed from crates.io into a tree-local root and reused when the pinned
# version is already there. CI points TRACKING_TOOLS at a cache outside its
# fresh clone; the standalone tests find the tools through it too.
export TRACKING_TOOLS ?= $(CURDIR)/.tools
WASMTIME_VERSION   := 48.0.8
WAC_VERSION        := 0.12.0
WASM_TOOLS_VERSION := 1.263.0
WASMTIME           := $(TRACKING_TOOLS)/bin/wasmtime
WAC                := $(TRACKING_TOOLS)/bin/wac
WASM_TOOLS         := $(TRACKING_TOOLS)/bin/wasm-tools

# $(call install-tool,CRATE,VERSION,BINARY,EXTRA-FLAGS): install
# CRATE@VERSION unless $(TRACKING_TOOLS)/bin/BINARY already reports VERSION
# as the second word of its --version.
# Only the features the project uses are built: the full wasmtime CLI
# (wasi-nn, http, tls, wizer, ...) would double the cold install.
define install-tool
	@if [ "$$($(TRACKING_TOOLS)/bin/$(3) --version 2>/dev/null | awk '{print $$2}')" = "$(2)" ]; then \
		echo "$(3) $(2): present in $(TRACKING_TOOLS)/bin"; \
	else \
		echo "$(3) $(2): installing into $(TRACKING_TOOLS) (cargo install, a few minutes)"; \
		$(CARGO) install --locked --quiet --root $(TRACKING_TOOLS) --version $(2) $(4) $(1); \
	fi
endef

tools: tool-wasm-tools tool-wac tool-wasmtime

tool-wasm-tools:
	$(call install-tool,wasm-tools,$(WASM_TOOLS_VERSION),wasm-tools,--no-default-features --features component$(,)validate$(,)print$(,)parse)

tool-wac:
	$(call install-tool,wac-cli,$(WAC_VERSION),wac,--no-default-features)

tool-wasmtime:
	$(call install-tool,wasmtime-cli,$(WASMTIME_VERSION),wasmtime,--no-default-features --features run$(,)cranelift$(,)component-model$(,)cache$(,)parallel-compilation)

# ---------------------------------------------------------------------------
# The storage plug and the standalone component (README: "Try it with the
# wasmtime CLI").
#
# The plug compiles SQLite's C for wasm32-wasip2 with Debian's clang and
# wasi-libc headers. clang looks for them under <sysroot>/include/<target>,
# and Debian puts them in /usr/include/wasm32-wasi, so a sysroot folder in
# target/ maps the one onto the other. Rust's own wasm32-wasip2 libc links the
# result. Exported so the wasm32 clippy run configures SQLite the same way.
WASI_SYSROOT := $(CURDIR)/target/wasi-sysroot
export CC_wasm32_wasip2     := clang-19
export AR_wasm32_wasip2     := llvm-ar-19
export CFLAGS_wasm32_wasip2 := --sysroot=$(WASI_SYSROOT)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

wasm-c-toolchain:
	@command -v clang-19 >/dev/null && command -v llvm-ar-19 >/dev/null \
		&& [ -f /usr/include/wasm32-wasi/stdio.h ] \
		&& [ -f /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a ] \
		|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq \
			clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc; }
	@mkdir -p $(WASI_SYSROOT)/include
	@ln -sfn /usr/include/wasm32-wasi $(WASI_SYSROOT)/include/wasm32-wasip2

plug: setup wasm-c-toolchain
	$(CARGO) build --release --target wasm32-wasip2 -p tracking-plug

# The guest with its storage import filled by the plug: one component that
# needs nothing but WASI. `wasmtime run --dir DATA::/` keeps DATA/tracking.db.
# All the tools come with it: the README's commands run the wasmtime CLI.
standalone: guest plug tools
	@mkdir -p $(dir $(STANDALONE))
	$(WAC) plug --plug $(PLUG) $(GUEST) -o $(STANDALONE)
