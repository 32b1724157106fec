#!/usr/bin/env bash
# actionlint (with shellcheck on every `run:` block) and zizmor over every workflow, and
# the CI scripts through shellcheck. Fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(ci/install-lint-tools.sh | tail -n 1)
"$bin/actionlint" -no-color -shellcheck "$bin/shellcheck" .github/workflows/*.yml
# --offline: no GitHub API lookups (there is no network here); the audits that need none still run.
"$bin/zizmor" --offline --no-progress --min-severity low .github/workflows/
"$bin/shellcheck" ci/*.sh .ci/run
echo "ci/lint-workflows: actionlint, zizmor and shellcheck are clean"
