# One entry point for people and CI. `make test` installs what the tests
# need (Debian packages for the etcd interop tests, the package itself with
# its test extras) and runs every test; `.ci/run` runs `make ci`.

PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=
FUZZ_SECONDS ?= 60
TORTURE_SECONDS ?= 300
TORTURE_SEED ?= 1
SOAK_SECONDS ?= 600
SOAK_STORAGES ?= 8

.PHONY: deps install test test-python test-rust lint ci demo bench fuzz torture soak clean

deps:
	bash .ci/install-interop.sh
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet ".[test,dev,bench]"

install:
	$(PIP) install --quiet .

test-rust:
	cargo test --locked --no-default-features

test-python:
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test: deps test-rust test-python

lint:
	cargo fmt --check
	cargo fmt --check --manifest-path fuzz/Cargo.toml
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --all-targets --no-default-features -- -D warnings
	ruff check python tests tools benches fuzz
	ruff format --check python tests tools benches fuzz
	$(PYTHON) -m mypy --strict python/raftwal
	$(PYTHON) -m mypy.stubtest raftwal._native
	$(PYTHON) tools/gen_descriptors.py --check
	$(PYTHON) tools/gen_etcd_descriptors.py --check

ci: deps lint test-rust test-python

demo: install
	raftwal demo

bench: install
	$(PYTHON) benches/compare.py --out BENCHMARKS.md --png benches/throughput.png

# cargo fuzz (record decoder, segment reader) and atheris (Python reading path)
fuzz:
	bash tools/fuzz.sh $(FUZZ_SECONDS)

# random structural damage x every recovery mode x every CLI subcommand
# (tests/support/torture.py); exit 1 on any breach, the cases kept in torture-cases/
torture:
	$(PYTHON) tests/support/torture.py --seconds $(TORTURE_SECONDS) --seed $(TORTURE_SEED) --keep torture-cases

# storages used as a service uses them, for a fixed time; nothing may leak
soak:
	$(PYTHON) tests/support/soak.py --seconds $(SOAK_SECONDS) --storages $(SOAK_STORAGES)

clean:
	rm -rf torture-cases target build dist .pytest_cache .hypothesis .mypy_cache .ruff_cache fuzz/target fuzz/artifacts
