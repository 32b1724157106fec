#!/usr/bin/env bash
# ci/base-toolchain.sh <version>
#
# The rustup toolchain a base builds with (`[uv] toolchain` in patches/<version>/series.toml),
# or nothing when it builds with the one running cargo. Exit 2 when there is no such base.
set -euo pipefail
cd "$(dirname "$0")/.."
series=patches/${1:?usage: ci/base-toolchain.sh <version>}/series.toml
if [ ! -f "$series" ]; then
  bases=(patches/[0-9]*/series.toml)
  bases=("${bases[@]#patches/}")
  echo "ci/base-toolchain.sh: no base $1: $series does not exist (bases: ${bases[*]%/series.toml})" >&2
  exit 2
fi
sed -n 's/^toolchain = "\(.*\)"$/\1/p' "$series"
