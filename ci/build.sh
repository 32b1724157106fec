#!/usr/bin/env bash
# Build patched and pristine uv, and every test binary, so the matrix jobs that restore this
# job's cache only run. Used by .github/workflows/matrix.yml's `build` job; locally it is
# just `cargo xtask build all`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask build all
cargo nextest run --workspace --no-run
