#!/usr/bin/env bash
# ci/fetch-official-uv.sh <version|latest>
#
# The official uv release from PyPI, for this machine's platform: `pip download`s the `uv`
# wheel (a binary wheel, nothing is installed or built) and extracts `uv` and `uvx` into
# target/uvfix/official/<version>/. Prints the path of `uv` on the last line, ready for
# `UVFIX_UV=…` (the scenario crate looks for `uvx` next to it). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
want=${1:?usage: ci/fetch-official-uv.sh <version|latest>}
python=${UVFIX_HOST_PYTHON:-python3}
root=target/uvfix/official

if [ "$want" != latest ] && [ -x "$root/$want/uv" ] && [ -x "$root/$want/uvx" ]; then
  echo "$PWD/$root/$want/uv"
  exit 0
fi

# pip from a private venv: the system interpreter may be "externally managed" or lack pip.
venv=$root/.venv
if [ ! -x "$venv/bin/pip" ]; then
  "$python" -m venv "$venv"
fi
spec=uv
[ "$want" = latest ] || spec="uv==$want"
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
"$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$download" "$spec" >&2
wheel=$(find "$download" -maxdepth 1 -name 'uv-*.whl' | head -n 1)
[ -n "$wheel" ] || { echo "ci/fetch-official-uv: pip downloaded no uv wheel for $spec" >&2; exit 1; }
# uv-0.12.5-py3-none-manylinux_2_17_x86_64.whl → 0.12.5
version=$(basename "$wheel" | cut -d- -f2)

dest=$root/$version
mkdir -p "$dest"
extract="$download/x"
"$venv/bin/python" -m zipfile -e "$wheel" "$extract"
for tool in uv uvx; do
  install -m 0755 "$extract/uv-$version.data/scripts/$tool" "$dest/$tool"
done
echo "ci/fetch-official-uv: $("$dest/uv" --version) in $dest" >&2
echo "$PWD/$dest/uv"
