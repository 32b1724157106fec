#!/usr/bin/env bash
# ci/job.sh <sandbox> <uv-under-test>
#
# One column of the matrix: every scenario × cache state for one sandbox and one uv.
#   <sandbox>        a name from crates/sandbox (none, landlock, ro-home, ro-root,
#                    foreign-owner, codex, sandbox-runtime, docker-ro, seatbelt)
#   <uv-under-test>  patched | pristine | official-<version> | official-latest
#
# The same script runs in .github/workflows/matrix.yml and on a developer's machine. The
# sandbox is required (UVFIX_REQUIRE_SANDBOXES): if it cannot run here the job fails
# instead of reporting skips. Results: JUnit under target/nextest/ci/ (or
# target/uvfix/matrix/ when `cargo xtask matrix` ran), the Markdown table in
# target/uvfix/matrix/report.md, both appended to $GITHUB_STEP_SUMMARY under Actions.
set -euo pipefail
cd "$(dirname "$0")/.."
sandbox=${1:?usage: ci/job.sh <sandbox> <patched|pristine|official-VERSION|official-latest>}
uut=${2:?usage: ci/job.sh <sandbox> <patched|pristine|official-VERSION|official-latest>}

case "$uut" in
  patched | pristine) label=$uut ;;
  official-*)
    UVFIX_UV=$(ci/fetch-official-uv.sh "${uut#official-}" | tail -n 1)
    export UVFIX_UV
    label=official
    ;;
  *) echo "ci/job.sh: unknown uv under test '$uut'" >&2; exit 2 ;;
esac

case "$sandbox" in
  codex | sandbox-runtime) ci/install-sandboxes.sh ;;
  docker-ro)
    # The sandbox runs with --network none and never pulls: fetch the image first.
    docker pull --quiet "${UVFIX_DOCKER_IMAGE:-debian:bookworm-slim}"
    ;;
esac

export UVFIX_REQUIRE_SANDBOXES=$sandbox
export NEXTEST_PROFILE=ci
status=0
if help=$(cargo xtask matrix --help 2>/dev/null); then
  args=()
  [[ $help == *--sandbox* ]] && args+=(--sandbox "$sandbox")
  [[ $label == official && $help == *"--uv "* ]] && args+=(--uv "$UVFIX_UV")
  # ${args[@]+…}: macOS ships bash 3.2, where an empty array is "unbound" under set -u.
  cargo xtask matrix ${args[@]+"${args[@]}"} || status=$?
else
  # No `cargo xtask matrix` in this checkout: the same cells as tests, one test per cell,
  # named `<uv>/<sandbox>/<scenario>/<state>`.
  cargo nextest run --workspace -E "test(/^${label}[^/]*\/${sandbox}\//)" || status=$?
fi

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "## ${sandbox} × ${uut} on $(uname -sm)"
    echo
    if [ -f target/uvfix/matrix/report.md ]; then
      cat target/uvfix/matrix/report.md
    else
      echo "No target/uvfix/matrix/report.md (see the JUnit artifact)."
    fi
    echo
  } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
