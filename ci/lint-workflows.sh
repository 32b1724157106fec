#!/usr/bin/env bash
# actionlint + zizmor over every workflow. Fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(ci/install-lint-tools.sh | tail -n 1)
"$bin/actionlint" -color=never .github/workflows/*.yml
# --offline: no GitHub API lookups (there is no network here); the audits that need none still run.
"$bin/zizmor" --offline --no-progress --min-severity low .github/workflows/
echo "ci/lint-workflows: actionlint and zizmor are clean"
