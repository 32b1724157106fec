#!/usr/bin/env bash
# ci/upstream-check.sh <astral-sh/uv checkout with tags>
#
# The scheduled job. Three questions, and only the first and the last can make it fail:
#
# 1. Does the series still apply to astral-sh/uv at the release it is pinned to
#    (patches/series.toml)? It must: if not, the fixture itself is broken (a patch or the
#    export regressed), and the job fails.
# 2. Does it apply to `main`, build there (with the toolchain uv's rust-toolchain.toml names)
#    and pass the touched crates' unit tests? That is a finding about upstream, not a
#    regression: upstream moves, and the series is rebased on purpose, not every night. It is
#    reported, never a failure.
# 3. The rebase cost, hunk by hunk: `upstream forward release` against the newest crates.io releases
#    and against `main`'s crates (`forward checkout`). Both exit non-zero only when a tool fails
#    (failing hunks are their findings), so only a tool failure here fails the job.
# 4. uv's own CI gates (`upstream check --gates`: Cargo.lock, fmt, check and clippy of the
#    whole workspace, the touched crates' unit tests, build/cache.rs) at the pinned release and
#    at the stack's last proposed step ($UVFIX_GATE_STEPS=all: at every step). A gate that
#    passes at the release and fails with the stack means the pull requests as exported would
#    fail upstream's CI: the job fails.
#
# The report goes to target/uvfix/upstream/report.md (uploaded by the workflow) and to
# $GITHUB_STEP_SUMMARY.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=${1:?usage: ci/upstream-check.sh <astral-sh/uv checkout with tags>}
work=${UVFIX_WORK_DIR:-target/uvfix}
out=$work/upstream
mkdir -p "$out"
report=$out/report.md
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

pinned=$(sed -n '/^\[uv\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' patches/series.toml | head -n 1)
[ -n "$pinned" ] || { echo "ci/upstream-check: no [uv] version in patches/series.toml" >&2; exit 1; }
main_rev=$(git -C "$checkout" rev-parse --short HEAD)

regression=0
# 1. The pinned release: must apply.
pinned_status=0
cargo xtask upstream check "$checkout" --rev "$pinned" --apply-only >"$logs/pinned.log" 2>&1 || pinned_status=$?
[ "$pinned_status" -eq 0 ] || regression=1

# 2. main: a finding either way.
toolchain_args=()
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$checkout/rust-toolchain.toml" 2>/dev/null || true)
if [ -n "$channel" ] && command -v rustup >/dev/null 2>&1; then
  rustup toolchain install "$channel" --profile minimal --no-self-update >"$logs/rustup.log" 2>&1 \
    && toolchain_args=(--toolchain "$channel")
fi
main_status=0
cargo xtask upstream check "$checkout" --rev HEAD ${toolchain_args[@]+"${toolchain_args[@]}"} \
  >"$logs/main.log" 2>&1 || main_status=$?

# 3. forward: a tool failure is a regression.
forward_status=0
cargo xtask upstream forward release >"$logs/forward.log" 2>&1 || forward_status=$?
[ "$forward_status" -eq 0 ] || regression=1
forward_main_status=0
cargo xtask upstream forward checkout "$checkout" --rev HEAD >"$logs/forward-main.log" 2>&1 \
  || forward_main_status=$?
[ "$forward_main_status" -eq 0 ] || regression=1

# 4. uv's CI gates, at the release and the last proposed step (or every step).
last_proposed=$(awk -F'"' '/^\[\[step\]\]/ { id = "" } /^id *=/ { id = $2 }
  /^status *= *"proposed"/ { last = id } END { print last }' patches/series.toml)
gate_args=(--step "$last_proposed")
if [ "${UVFIX_GATE_STEPS:-last-proposed}" = all ]; then gate_args=(); fi
gates_status=0
cargo xtask upstream check "$checkout" --rev "$pinned" --gates ${gate_args[@]+"${gate_args[@]}"} \
  >"$logs/gates.log" 2>&1 || gates_status=$?
[ "$gates_status" -eq 0 ] || regression=1

verdict() { if [ "$1" -eq 0 ]; then echo "$2"; else echo "$3"; fi; }
excerpt() {
  echo '```text'
  grep -E '^(uvfix:|  applies:|error:|test result:)' "$1" | tail -n 40 || true
  echo '```'
}
{
  echo "# Upstream check"
  echo
  echo "| question | result |"
  echo "|---|---|"
  echo "| series applies at the pinned release $pinned | $(verdict "$pinned_status" "yes" "**NO: fixture regression**") |"
  echo "| series applies, builds and passes the unit tests at \`main\` ($main_rev) | $(verdict "$main_status" "yes" "no (a finding, see below; rebase with \`cargo xtask upstream forward checkout\`)") |"
  echo "| \`upstream forward release\` ran (newest releases) | $(verdict "$forward_status" "yes" "**NO: tool failure**") |"
  echo "| \`upstream forward checkout\` ran (\`main\`) | $(verdict "$forward_main_status" "yes" "**NO: tool failure**") |"
  echo "| uv's CI gates pass with the stack at $pinned (${UVFIX_GATE_STEPS:-last proposed step, $last_proposed}) | $(verdict "$gates_status" "yes" "**NO: the exported pull requests would fail uv's CI**") |"
  echo
  echo "## At $pinned"
  excerpt "$logs/pinned.log"
  echo
  echo "## At main ($main_rev)"
  excerpt "$logs/main.log"
  echo
  echo "## Rebase cost: the newest crates"
  if [ "$forward_status" -eq 0 ]; then cat "$out/forward/report.md"; else excerpt "$logs/forward.log"; fi
  echo
  echo "## Rebase cost: main ($main_rev)"
  if [ "$forward_main_status" -eq 0 ]; then cat "$out/forward-checkout/report.md"; else excerpt "$logs/forward-main.log"; fi
  echo
  echo "## uv's CI gates at $pinned"
  if [ -f "$out/check/gates/gates.md" ]; then
    cat "$out/check/gates/gates.md"
    for step_report in "$out"/check/gates/*.md; do
      case "$step_report" in */gates.md) continue ;; esac
      echo
      cat "$step_report"
    done
  else
    excerpt "$logs/gates.log"
  fi
} >"$report"
cat "$logs/pinned.log" "$logs/main.log" "$logs/forward.log" "$logs/forward-main.log" "$logs/gates.log" \
  >"$out/upstream-check.log"

cat "$report"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$report" >>"$GITHUB_STEP_SUMMARY"; fi
if [ "$regression" -ne 0 ]; then
  echo "ci/upstream-check: the fixture regressed (see the table above; full log: $out/upstream-check.log)" >&2
fi
exit "$regression"
