#!/usr/bin/env bash
# ci/steps.sh [cargo xtask matrix options…]
#
# What each step of the stack turns green, on the default base: pristine, every prefix of the
# stack and the whole stack, each its own build (70-122 s each on 2 cores once patched and
# pristine are built: only the crates a step touches and the uv crates above them compile).
#
# The sandboxes are the ones that deny by a mechanism of their own, and run in a fraction of a
# second: none (the control: everything passes), landlock (EACCES), ro-home and ro-root
# (read-only bind mounts, EROFS), foreign-owner (another user's cache) and, as root,
# immutable (EPERM). The wrappers (codex, codex-current, sandbox-runtime, docker-ro) deny by
# those same kernel mechanisms at 3 to 30 times the cost per cell; the test suite runs them
# for pristine and the whole stack, `cargo xtask matrix --steps` runs them for every step.
set -euo pipefail
cd "$(dirname "$0")/.."
sandboxes=none,landlock,ro-home,ro-root,foreign-owner
if [ "$(id -u)" -eq 0 ]; then sandboxes+=,immutable; fi
export UVFIX_REQUIRE_SANDBOXES=$sandboxes
out=${UVFIX_WORK_DIR:-target/uvfix}/steps
status=0
cargo xtask matrix --steps --sandbox "$sandboxes" --out "$out" "$@" || status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$out/steps.md" ]; then
  cat "$out/steps.md" >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
