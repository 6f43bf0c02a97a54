# sluice — the two commands: `make run` and `make test`.
CARGO ?= cargo
CONF  ?= conf/sluice.conf

.PHONY: run build test fmt clippy unit integration bench clean

build:
	$(CARGO) build --release --workspace

run: build
	@mkdir -p run
	./target/release/sluice -c $(CONF) -g "daemon off;"

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --profile ci

bench: build
	scripts/bench.sh

clean:
	$(CARGO) clean
