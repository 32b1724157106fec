#!/usr/bin/env bash
# ci/base.sh <version> [cargo xtask matrix options…]
#
# The stack on another base (patches/<version>/): its patched build in every sandbox here,
# next to that release's official wheel as the control. The official wheel, not a pristine
# build: it is what users run, it fails where a pristine build fails (the default base tests
# both and shows it), and a pristine build would cost another rebuild of every uv crate with
# the base's toolchain. `cargo xtask matrix --base <version>` builds and tests pristine too.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: ci/base.sh <version> [cargo xtask matrix options…]}
shift
toolchain=$(ci/base-toolchain.sh "$base")
if [ -n "$toolchain" ] && ! cargo "+$toolchain" --version >/dev/null 2>&1; then
  echo "ci/base.sh: base $base builds with the rustup toolchain '$toolchain'" \
    "(patches/$base/series.toml), which is not installed here: rustup toolchain install $toolchain" >&2
  exit 2
fi
official=$(ci/fetch-official-uv.sh "$base" | tail -n 1)
patched=$(cargo xtask uv-path patched --base "$base" | tail -n 1)
out=${UVFIX_WORK_DIR:-target/uvfix}/bases/$base/matrix
status=0
cargo xtask matrix --base "$base" --uv "patched=$patched" --uv "official-$base=$official" \
  --out "$out" "$@" || status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/matrix.md" ]; then
  cat "$out/matrix.md" >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
