#!/usr/bin/env bash
# ci/base-toolchain.sh <version>             the rustup toolchain a base builds with
# ci/base-toolchain.sh --install <version>   ... installed with rustup, unless it is already
# ci/base-toolchain.sh --install-all         ... for every base (patches/<VERSION>/)
#
# The toolchain is `[uv] toolchain` in patches/<version>/series.toml: a dated nightly
# (nightly-YYYY-MM-DD), so this machine, .ci/run and every GitHub job build a base with the
# same compiler, not with whatever nightly is current that day. Nothing is printed when the
# base builds with the toolchain running cargo. Exit 2 when there is no such base.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain_of() {
  local series=patches/$1/series.toml
  if [ ! -f "$series" ]; then
    local bases=(patches/[0-9]*/series.toml)
    bases=("${bases[@]#patches/}")
    echo "ci/base-toolchain.sh: no base $1: $series does not exist (bases: ${bases[*]%/series.toml})" >&2
    exit 2
  fi
  sed -n 's/^toolchain = "\(.*\)"$/\1/p' "$series"
}

install() {
  local toolchain
  toolchain=$(toolchain_of "$1")
  [ -n "$toolchain" ] || return 0
  if cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "ci/base-toolchain: base $1 builds with $toolchain, installed" >&2
    return 0
  fi
  echo "ci/base-toolchain: installing $toolchain for base $1 (patches/$1/series.toml)" >&2
  rustup toolchain install "$toolchain" --profile minimal
}

case "${1:-}" in
  --install) install "${2:?usage: ci/base-toolchain.sh --install <version>}" ;;
  --install-all)
    for series in patches/[0-9]*/series.toml; do
      install "$(basename "$(dirname "$series")")"
    done
    ;;
  "" | -*) echo "usage: ci/base-toolchain.sh [--install] <version> | --install-all" >&2; exit 2 ;;
  *) toolchain_of "$1" ;;
esac
