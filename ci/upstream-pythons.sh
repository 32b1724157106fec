#!/usr/bin/env bash
# Interpreters for upstream's integration tests (`cargo xtask upstream check --tests`).
#
# uv's test harness looks for the versions a test pins (3.12, 3.8, …) as managed installs
# (downloaded from GitHub: not reachable here) or on PATH. pyenv's builds serve, but as root
# the tests run as uid 65534, which cannot enter /root, and pyenv links each `python3.X`
# to its libpython through an absolute RUNPATH under the pyenv root. So: copy each version
# to target/uvfix/upstream/pythons/<version>, world-readable, and point the copy's RUNPATH
# at its own lib/ (patchelf, Debian's). CPython finds its prefix from where it runs, so the
# copy works anywhere.
#
# Usage: ci/upstream-pythons.sh [PYENV_VERSIONS_DIR]   (default: $(pyenv root)/versions)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$(pyenv root 2>/dev/null)/versions}
out=${UVFIX_WORK_DIR:-$root/target/uvfix}/upstream/pythons
if [ ! -d "$src" ]; then
    echo "error: no interpreters at '$src': pass pyenv's versions directory, or install" \
         "the versions uv's tests pin (3.8-3.13) with pyenv first" >&2
    exit 1
fi
command -v patchelf >/dev/null || {
    echo "error: patchelf is missing: apt-get install patchelf" >&2
    exit 1
}
mkdir -p "$out"
for dir in "$src"/3.*; do
    version=$(basename "$dir")
    minor=${version%.*}
    exe="$dir/bin/python$minor"
    [ -x "$exe" ] || continue
    if [ ! -x "$out/$version/bin/python$minor" ]; then
        rm -rf "$out/$version.partial"
        cp -a "$dir" "$out/$version.partial"
        chmod -R a+rX "$out/$version.partial"
        if readelf -d "$exe" | grep -q 'R.*PATH'; then
            patchelf --set-rpath '$ORIGIN/../lib' "$out/$version.partial/bin/python$minor"
        fi
        mv "$out/$version.partial" "$out/$version"
    fi
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups \
            "$out/$version/bin/python$minor" -c 'import ssl, sqlite3, venv' \
            || { echo "error: the copy of $version does not run as uid 65534" >&2; exit 1; }
    fi
    echo "$out/$version/bin"
done
