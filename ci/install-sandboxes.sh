#!/usr/bin/env bash
# ci/install-sandboxes.sh [codex|codex-current|sandbox-runtime…]   (default: all three)
#
# The external sandboxes from npm, into target/uvfix/npm (nothing global; the sandbox crate
# looks there after $UVFIX_CODEX/$UVFIX_SRT and PATH). A job names the one its cell needs, so
# a fresh runner downloads only that:
# - codex: Codex CLI 0.63.0, the Landlock generation of `codex sandbox linux`, the one in the
#   original report (astral-sh/uv#16820).
# - codex-current: Codex CLI's current release: bubblewrap, EROFS; what Codex users run now.
#   Its own prefix, since both generations install a `codex`.
# - sandbox-runtime: Anthropic's sandbox runtime (`srt`, Claude Code's sandbox): bubblewrap +
#   a read-only deny list; needs bwrap, rg and socat (ci/install-deps.sh).
# Exact versions, so a new release changes the matrix only when we bump them here.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=target/uvfix/npm
if ! command -v npm >/dev/null 2>&1; then
  echo "ci/install-sandboxes: npm not found; the codex and sandbox-runtime columns will be skipped (apt-get install npm)" >&2
  exit 0
fi
npm_install() { npm install --prefix "$1" --no-audit --no-fund --loglevel=error "${@:2}"; }
wanted=("$@")
[ "${#wanted[@]}" -gt 0 ] || wanted=(codex codex-current sandbox-runtime)
for sandbox in "${wanted[@]}"; do
  case "$sandbox" in
    codex)
      [ -x "$prefix/node_modules/.bin/codex" ] || npm_install "$prefix" @openai/codex@0.63.0
      ;;
    sandbox-runtime)
      [ -x "$prefix/node_modules/.bin/srt" ] || npm_install "$prefix" @anthropic-ai/sandbox-runtime@0.0.78
      ;;
    codex-current)
      # Keep in step with CODEX_CURRENT_VERSION in crates/sandbox/src/external.rs.
      current=0.171.0
      current_prefix=target/uvfix/npm-codex-current
      if [ "$(cat "$current_prefix/.version" 2>/dev/null)" != "$current" ]; then
        mkdir -p "$current_prefix"
        npm_install "$current_prefix" "@openai/codex@$current"
        echo "$current" >"$current_prefix/.version"
      fi
      ;;
    *)
      echo "ci/install-sandboxes: no npm sandbox '$sandbox' (codex, codex-current, sandbox-runtime)" >&2
      exit 2
      ;;
  esac
done
