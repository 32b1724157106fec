#!/usr/bin/env bash
# ci/upstream-check.sh <astral-sh/uv checkout> [--rev REV]
#
# The scheduled job: does the series still apply to astral-sh/uv, build there and pass the
# touched crates' unit tests? uv's main usually needs a newer rustc than the fixture's, so
# the toolchain its rust-toolchain.toml names is installed first (minimal profile) and
# handed to `cargo xtask upstream check --toolchain`. Then `upstream forward` reports how
# the series meets the newest crates.io releases. Both reports go to $GITHUB_STEP_SUMMARY.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=${1:?usage: ci/upstream-check.sh <astral-sh/uv checkout> [--rev REV]}
shift

toolchain_args=()
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$checkout/rust-toolchain.toml" 2>/dev/null || true)
if [ -n "$channel" ] && command -v rustup >/dev/null 2>&1; then
  rustup toolchain install "$channel" --profile minimal --no-self-update
  toolchain_args=(--toolchain "$channel")
fi

status=0
log=$(mktemp)
cargo xtask upstream check "$checkout" ${toolchain_args[@]+"${toolchain_args[@]}"} "$@" 2>&1 | tee "$log" || status=$?
cargo xtask upstream forward || status=$?

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "## upstream check against astral-sh/uv $(git -C "$checkout" rev-parse --short HEAD)"
    echo
    echo '```text'
    grep -E '^(uvfix:|  applies:|error:)' "$log" || true
    echo '```'
    echo
    cat target/uvfix/upstream/forward/report.md 2>/dev/null || true
  } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
