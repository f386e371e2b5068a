# The two commands a new checkout needs:
#   make run    builds everything and runs the demo (tracking demo)
#   make test   builds everything and runs every test
# Both install what is missing first (the wasm32-wasip2 Rust target).

CARGO   ?= cargo
GUEST   := target/wasm32-wasip2/release/tracking_guest.wasm
TRACKING := target/release/tracking
DB      ?= var/tracking.db

.PHONY: run test guest host setup lint clean

run: guest host
	$(TRACKING) --db $(DB) demo

test: guest
	$(CARGO) test --release --workspace

# The component: built once, found by the host and the tests at $(GUEST).
guest: setup
	$(CARGO) build --release --target wasm32-wasip2 -p tracking-guest -p rogue-guest

host:
	$(CARGO) build --release -p tracking-host

setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 \
		|| rustup target add wasm32-wasip2

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --release --target wasm32-wasip2 -p tracking-guest -p rogue-guest -- -D warnings

clean:
	$(CARGO) clean
	rm -rf var
