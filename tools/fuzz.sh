#!/usr/bin/env bash
# Fuzz raftwal's readers for a fixed time budget per target; exit 1 if any
# target crashed (a panic, an abort, a hang past -timeout, an unexpected
# Python exception).
#
#   tools/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS (default 60) is each target's fuzzing time; building comes on top.
# TARGETs (default: all three):
#   record_decoder  cargo-fuzz: fuzz/fuzz_targets/record_decoder.rs
#   segment_reader  cargo-fuzz: fuzz/fuzz_targets/segment_reader.rs
#   python          atheris:    tests/support/atheris_reader.py
#
# Only stable Rust is needed: cargo-fuzz's default AddressSanitizer build
# passes -Zsanitizer, which stable rustc accepts with RUSTC_BOOTSTRAP=1 (set
# here, for the fuzz build only). FUZZ_SANITIZER=none builds without it on
# plain stable. cargo-fuzz and atheris are installed when missing.
#
# Inputs that crash are kept in fuzz/artifacts/<target>/; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
#   python tests/support/atheris_reader.py fuzz/artifacts/python/<file>
# The corpus grown by a run is kept in fuzz/target/corpus/<target>/ (the
# seeds in fuzz/corpus/ are read, never written).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

budget="${1:-60}"
[ $# -gt 0 ] && shift
if ! [[ "$budget" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS] [record_decoder|segment_reader|python]..." >&2
    exit 2
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(record_decoder segment_reader python)

PYTHON="${PYTHON:-python3}"
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"

# The targets write a temporary WAL directory per input (and fsync it):
# on tmpfs that is several times faster.
scratch_parent="${TMPDIR:-/tmp}"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_parent=/dev/shm; fi
scratch="$(mktemp -d "$scratch_parent/raftwal-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

now() { date +%s; }
failed=()

need_rust=0
for t in "${targets[@]}"; do
    case "$t" in
        record_decoder | segment_reader) need_rust=1 ;;
        python) ;;
        *)
            echo "unknown target: $t" >&2
            exit 2
            ;;
    esac
done

if [ "$need_rust" = 1 ]; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        t0=$(now)
        cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
        echo "fuzz: installed cargo-fuzz in $(($(now) - t0)) s"
    fi
    sanitizer=(--sanitizer "$FUZZ_SANITIZER")
    if [ "$FUZZ_SANITIZER" != none ]; then export RUSTC_BOOTSTRAP=1; fi
    # fuzz/Cargo.lock must be up to date (cargo fuzz has no --locked).
    cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
    t0=$(now)
    cargo fuzz build "${sanitizer[@]}"
    echo "fuzz: built the cargo-fuzz targets in $(($(now) - t0)) s"
fi

for t in "${targets[@]}"; do
    corpus="$root/fuzz/target/corpus/$t"
    artifacts="$root/fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    opts=(
        "-max_total_time=$budget"
        -timeout=30
        -rss_limit_mb=2048
        -print_final_stats=1
        "-artifact_prefix=$artifacts/"
    )
    echo "fuzz: $t for $budget s"
    t0=$(now)
    if [ "$t" = python ]; then
        if ! "$PYTHON" -c "import atheris" 2>/dev/null; then
            "$PYTHON" -m pip install --quiet atheris
        fi
        # atheris/libFuzzer writes stray files to the current directory.
        rc=0
        (cd "$scratch" && "$PYTHON" "$root/tests/support/atheris_reader.py" "${opts[@]}" "$corpus") || rc=$?
    else
        rc=0
        cargo fuzz run "${sanitizer[@]}" "$t" "$corpus" "$root/fuzz/corpus/$t" -- "${opts[@]}" || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $t FAILED (exit $rc) after $(($(now) - t0)) s; input in $artifacts/" >&2
        failed+=("$t")
    else
        echo "fuzz: $t ran $(($(now) - t0)) s, no crash"
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: crashed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${targets[*]}: no crash in $budget s each"
