#!/usr/bin/env bash
# ci/job.sh <sandbox> <uv-under-test> [cargo xtask matrix options…]
#
# One column of the matrix: every scenario × cache state for one sandbox and one uv.
#   <sandbox>        a name from crates/sandbox (none, landlock, ro-home, ro-root,
#                    foreign-owner, codex, codex-current, sandbox-runtime, docker-ro, seatbelt)
#   <uv-under-test>  patched | pristine | official-<version> | official-latest
#   options          passed on, e.g. `--scenario S1,S4 --jobs 1`
#
# The same script runs in .github/workflows/matrix.yml and on a developer's machine. The
# sandbox is required (UVFIX_REQUIRE_SANDBOXES): if it cannot run here the job fails
# instead of reporting skips. `cargo xtask matrix` writes matrix.md, matrix.json and
# junit.xml to target/uvfix/matrix/; under GitHub Actions the table is also appended to
# $GITHUB_STEP_SUMMARY.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: ci/job.sh <sandbox> <patched|pristine|official-VERSION|official-latest>"
sandbox=${1:?$usage}
uut=${2:?$usage}
shift 2

case "$uut" in
  patched | pristine)
    # The fixture's own build: a binary handed in (UVFIX_UV_PATCHED / UVFIX_UV_PRISTINE, e.g.
    # the build job's artifact in CI), else built or found up to date by `cargo xtask`.
    label=$uut
    # Not ${uut^^}: macOS runs this with /bin/bash 3.2, which has no case modification.
    case "$uut" in patched) given=UVFIX_UV_PATCHED ;; *) given=UVFIX_UV_PRISTINE ;; esac
    if [ -n "${!given:-}" ]; then
      uv=${!given}
    else
      uv=$(cargo xtask uv-path "$uut")
    fi
    ;;
  official-*)
    # The release wheel from PyPI, unpatched: it gets the upstream expectations.
    uv=$(ci/fetch-official-uv.sh "${uut#official-}" | tail -n 1)
    label=official-$("$uv" --version | cut -d' ' -f2)
    ;;
  *) echo "ci/job.sh: unknown uv under test '$uut'; $usage" >&2; exit 2 ;;
esac

case "$sandbox" in
  # The npm sandboxes: as on a fresh runner, the job installs what its sandbox needs.
  codex | codex-current | sandbox-runtime) ci/install-sandboxes.sh "$sandbox" ;;
  docker-ro)
    # An engine (started here as root if none runs, and stopped again at the end) and the
    # image, built from the host's distribution packages; the sandbox never pulls.
    if [ "$(ci/docker-engine.sh start)" = started ]; then
      trap 'ci/docker-engine.sh stop' EXIT
    fi
    UVFIX_DOCKER_IMAGE=$(ci/docker-image.sh | tail -n 1)
    export UVFIX_DOCKER_IMAGE
    ;;
esac

export UVFIX_REQUIRE_SANDBOXES=$sandbox
status=0
out=${UVFIX_WORK_DIR:-target/uvfix}/matrix
cargo xtask matrix --sandbox "$sandbox" --uv "$label=$uv" --out "$out" "$@" || status=$?

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  {
    echo "## ${sandbox} × ${label} on $(uname -sm)"
    echo
    if [ -f "$out/matrix.md" ]; then
      cat "$out/matrix.md"
    else
      echo "No $out/matrix.md: the matrix did not get to write its report (see the log)."
    fi
    echo
  } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
