#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, formatting, lints, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# Unit and integration tests (doc tests: none; benchmarks run with `cargo bench`).
cargo test --locked --lib --bins --tests
