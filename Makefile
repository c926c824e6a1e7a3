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

WHEEL_DIR ?= target/wheels
WHEEL_VENV ?= target/wheel-venv

.PHONY: deps install test test-python test-rust lint ci demo bench fuzz torture soak clean wheel wheel-test docs

deps:
	bash .ci/install-interop.sh
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet ".[test,dev,bench,docs]"

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
	ruff check python tests tools benches fuzz examples
	ruff format --check python tests tools benches fuzz examples
	$(PYTHON) -m mypy --strict python/raftwal
	$(PYTHON) -m mypy.stubtest raftwal._native
	$(PYTHON) tools/gen_descriptors.py --check
	$(PYTHON) tools/gen_etcd_descriptors.py --check
	check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

ci: deps lint docs test-rust test-python wheel-test

# The documentation site (mkdocs-material + mkdocstrings), warnings as errors.
docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict -d target/site

# The wheel people install: manylinux2014 (glibc 2.17), built with zig from
# PyPI, stripped; auditwheel confirms the tag.
wheel:
	rm -rf $(WHEEL_DIR)
	maturin build --release --locked --zig --compatibility manylinux2014 --strip -o $(WHEEL_DIR)
	auditwheel show $(WHEEL_DIR)/*.whl

# The suite against that wheel, installed in a fresh venv with no Rust
# toolchain on the PATH. The failpoint tests build a special debug build
# with cargo and run in test-python; they are the only ones left out here.
wheel-test: wheel
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet "$$(ls $(WHEEL_DIR)/*.whl)[test,dev,bench]"
	env PATH="$(CURDIR)/$(WHEEL_VENV)/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		RAFTWAL_WHEEL_TEST=1 $(WHEEL_VENV)/bin/python -m pytest $(PYTEST_ARGS) \
		--ignore=tests/faults/test_faults.py --ignore=tests/faults/test_trust_faults.py

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
