#!/usr/bin/env bash
# The external sandboxes from npm, into target/uvfix/npm (nothing global; the sandbox crate
# looks there after $UVFIX_CODEX/$UVFIX_SRT and PATH):
# - Codex CLI 0.63.0: the Landlock generation of `codex sandbox linux`, the one in the
#   original report (astral-sh/uv#16820).
# - Codex CLI's current release (the `codex-current` column): bubblewrap, EROFS; what Codex
#   users run now. Its own prefix, since both generations install a `codex`.
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
if [ ! -x "$prefix/node_modules/.bin/codex" ] || [ ! -x "$prefix/node_modules/.bin/srt" ]; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
    @openai/codex@0.63.0 @anthropic-ai/sandbox-runtime@0.0.78
fi
# Keep in step with CODEX_CURRENT_VERSION in crates/sandbox/src/external.rs.
current=0.171.0
current_prefix=target/uvfix/npm-codex-current
if [ "$(cat "$current_prefix/.version" 2>/dev/null)" != "$current" ]; then
  mkdir -p "$current_prefix"
  npm install --prefix "$current_prefix" --no-audit --no-fund --loglevel=error "@openai/codex@$current"
  echo "$current" >"$current_prefix/.version"
fi
