#!/usr/bin/env bash
# Build patched and pristine uv, xtask and the sandbox helper, so the matrix jobs that
# restore this job's cache only run. Used by .github/workflows/matrix.yml's `build` job;
# locally `cargo xtask matrix` does the same on demand.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo xtask build all
cargo build --workspace --bins
