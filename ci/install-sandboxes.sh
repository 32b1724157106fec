#!/usr/bin/env bash
# The external sandboxes from npm, into target/uvfix/npm (nothing global; the sandbox crate
# looks there after $UVFIX_CODEX/$UVFIX_SRT and PATH):
# - Codex CLI 0.63.0: the Landlock generation of `codex sandbox linux`, the one in the
#   original report (astral-sh/uv#16820).
# - Anthropic's sandbox runtime (`srt`, Claude Code's sandbox): bubblewrap + a read-only
#   deny list; needs bwrap, rg and socat (ci/install-deps.sh).
# Exact versions, so a new release changes the matrix only when we bump them here.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=target/uvfix/npm
if ! command -v npm >/dev/null 2>&1; then
  echo "ci/install-sandboxes: npm not found; the codex and sandbox-runtime columns will be skipped (apt-get install npm)" >&2
  exit 0
fi
if [ -x "$prefix/node_modules/.bin/codex" ] && [ -x "$prefix/node_modules/.bin/srt" ]; then
  exit 0
fi
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
  @openai/codex@0.63.0 @anthropic-ai/sandbox-runtime@0.0.78
