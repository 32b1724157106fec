#!/usr/bin/env bash
# Interpreters for upstream's integration tests (`cargo xtask upstream check --tests`).
#
# uv's test harness looks for the versions a test pins (3.12, 3.8, …) as managed installs
# (downloaded from GitHub: not reachable here) or on PATH. pyenv's builds serve. As root the
# tests run as uid 65534, and a CPython build only works from the prefix it was built for:
# a virtual environment made from it finds its standard library through that prefix, so a
# copy elsewhere breaks as soon as a test creates a venv from a venv. So the interpreters stay
# where pyenv built them; this links each one into target/uvfix/upstream/pythons/<version>
# (where `upstream check --tests` looks) and checks that uid 65534 can run it. If it cannot
# enter pyenv's root (e.g. /root is 0700), `--allow-traverse` adds the search bit (o+x, not
# read) to the directories on the way, and says which.
#
# Usage: ci/upstream-pythons.sh [--allow-traverse] [PYENV_VERSIONS_DIR]
#        (default: $(pyenv root)/versions)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
traverse=false
if [ "${1:-}" = --allow-traverse ]; then traverse=true; shift; fi
src=${1:-$(pyenv root 2>/dev/null)/versions}
out=${UVFIX_WORK_DIR:-$root/target/uvfix}/upstream/pythons
if [ ! -d "$src" ]; then
    echo "error: no interpreters at '$src': pass pyenv's versions directory, or install" \
         "the versions uv's tests pin (3.8-3.13) with pyenv first" >&2
    exit 1
fi
src=$(cd "$src" && pwd -P)
as_test_user() {
    if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then
    blocked=()
    dir=$src
    while [ "$dir" != / ]; do
        [ "$(( 0$(stat -c %a "$dir") & 1 ))" = 1 ] || blocked+=("$dir")
        dir=$(dirname "$dir")
    done
    if [ ${#blocked[@]} -gt 0 ]; then
        if ! $traverse; then
            echo "error: uid 65534 cannot enter ${blocked[*]}, so it cannot run the" \
                 "interpreters in $src. Rerun with --allow-traverse to add o+x there," \
                 "or run upstream's tests as a non-root user." >&2
            exit 1
        fi
        chmod o+x "${blocked[@]}"
        echo "uvfix: added o+x (search, not read) to ${blocked[*]}" >&2
    fi
fi
rm -rf "$out"
mkdir -p "$out"
for dir in "$src"/3.*; do
    version=$(basename "$dir")
    minor=${version%.*}
    [ -x "$dir/bin/python$minor" ] || continue
    ln -s "$dir" "$out/$version"
    as_test_user "$out/$version/bin/python$minor" -c 'import ssl, sqlite3, venv' \
        || { echo "error: $dir/bin/python$minor does not run as the test user" >&2; exit 1; }
    echo "$out/$version/bin"
done
