#!/usr/bin/env bash
# ci/as-runner.sh [SANDBOX...]
#
# The matrix jobs as GitHub's runner runs them: as an unprivileged user with passwordless sudo
# (and in the docker group), in a checkout that user owns, with the uv builds handed over as
# artifacts. Root hides bugs a runner meets (root ignores mode bits, may set the immutable
# attribute, may start an engine), so this runs `ci/job.sh <sandbox> <uv>` for every Linux
# sandbox as such a user, here. Run as root (it creates the user); used by .ci/run.
#
#   SANDBOX...              default: every Linux sandbox of the GitHub matrix
#   UVFIX_RUNNER_USER       the user (default uvfix-runner; created if missing)
#   UVFIX_RUNNER_UVS        uv builds (default "patched pristine")
#   UVFIX_RUNNER_SCENARIOS  scenarios (default S1,S4,S7: the report's command, a tool and
#                           `uv pip install`; every cache state runs, lock-mode-000 included,
#                           which only a non-root uid can show). `all` for every scenario.
#
# Mirrors the workflow's steps: ci/install-deps.sh and ci/allow-userns.sh through sudo, then
# ci/job.sh. What the user gets and why:
# - the checkout: this tree's tracked and untracked, not ignored files (actions/checkout);
# - Rust: this machine's toolchain, hard-linked to /opt/uvfix-runner-rust (root's rustup home
#   is not readable by others); the user's own CARGO_HOME, so crates come from crates.io;
# - uv: the builds of `cargo xtask uv-path` copied in and named by UVFIX_UV_PATCHED /
#   UVFIX_UV_PRISTINE, as the matrix workflow's build artifact is;
# - the npm sandboxes: copied from this checkout's target/uvfix/npm when installed (a cache
#   restore), else ci/job.sh installs them as the user.
# Reports land in ~USER/reports/<sandbox>-<uv>/; the last lines are a table of the jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "ci/as-runner: run as root: it creates the unprivileged user the jobs run as" >&2
  exit 2
fi
user=${UVFIX_RUNNER_USER:-uvfix-runner}
read -r -a uvs <<<"${UVFIX_RUNNER_UVS:-patched pristine}"
scenarios=${UVFIX_RUNNER_SCENARIOS:-S1,S4,S7}
sandboxes=("$@")
if [ "${#sandboxes[@]}" -eq 0 ]; then
  sandboxes=(none landlock ro-home ro-root foreign-owner codex codex-current sandbox-runtime docker-ro)
fi
start=$SECONDS

# The user, as GitHub's `runner`: passwordless sudo, member of the docker group.
if ! command -v sudo >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sudo >/dev/null
fi
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$user"
fi
echo "$user ALL=(ALL) NOPASSWD:ALL" >"/etc/sudoers.d/uvfix-$user"
chmod 0440 "/etc/sudoers.d/uvfix-$user"
if getent group docker >/dev/null; then usermod -aG docker "$user"; fi
home=$(getent passwd "$user" | cut -d: -f6)

# Rust, readable by the user.
sysroot=$(rustc --print sysroot)
rust=/opt/uvfix-runner-rust/$(rustc --version | cut -d' ' -f2)
if [ ! -x "$rust/bin/cargo" ]; then
  mkdir -p "$(dirname "$rust")"
  cp -al "$sysroot/." "$rust.partial" 2>/dev/null || cp -a "$sysroot/." "$rust.partial"
  mv "$rust.partial" "$rust"
fi

# The uv builds, before anything runs as the user (building them needs this checkout's lock).
artifacts=$home/artifacts
for v in "${uvs[@]}"; do
  case "$v" in
    patched | pristine)
      # A build handed in (UVFIX_UV_PATCHED / UVFIX_UV_PRISTINE) as for ci/job.sh, else ours.
      given=UVFIX_UV_${v^^}
      bin=${!given:-}
      [ -n "$bin" ] || bin=$(cargo xtask uv-path "$v")
      install -D -m 0755 "$bin" "$artifacts/$v/uv"
      install -D -m 0755 "$(dirname "$bin")/uvx" "$artifacts/$v/uvx"
      ;;
  esac
done

# The checkout, owned by the user.
checkout=$home/uvfix
rm -rf "$checkout"
mkdir -p "$checkout"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$checkout"
if [ -x target/uvfix/npm/node_modules/.bin/codex ]; then
  mkdir -p "$checkout/target/uvfix"
  cp -a target/uvfix/npm "$checkout/target/uvfix/"
fi
for npm in target/uvfix/npm-codex-*; do
  [ -d "$npm" ] && cp -a "$npm" "$checkout/target/uvfix/"
done
rm -rf "$home/reports"
mkdir -p "$home/reports"
chown -R "$user:" "$checkout" "$artifacts" "$home/reports"

as_user() {
  sudo -u "$user" -H env -i HOME="$home" USER="$user" LOGNAME="$user" \
    PATH="$rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    CARGO_TERM_COLOR=never CARGO_TARGET_DIR="$home/target" UVFIX_WORK_DIR="$home/uvfix-work" \
    UVFIX_UV_PATCHED="$artifacts/patched/uv" UVFIX_UV_PRISTINE="$artifacts/pristine/uv" \
    ${UVFIX_DOCKER_IMAGE:+UVFIX_DOCKER_IMAGE="$UVFIX_DOCKER_IMAGE"} \
    bash -c 'cd "$1" && shift && "$@"' as-runner "$checkout" "$@"
}

echo "ci/as-runner: as $(as_user id -un) (uid $(as_user id -u), groups: $(as_user id -Gn))" >&2
as_user ci/install-deps.sh
as_user ci/allow-userns.sh
scenario_args=()
[ "$scenarios" = all ] || scenario_args=(--scenario "$scenarios")

summary=()
failed=0
for sandbox in "${sandboxes[@]}"; do
  for v in "${uvs[@]}"; do
    job_start=$SECONDS
    status=0
    as_user ci/job.sh "$sandbox" "$v" "${scenario_args[@]}" --jobs 2 \
      >"$home/reports/$sandbox-$v.log" 2>&1 || status=$?
    if [ -d "$home/uvfix-work/matrix" ]; then
      rm -rf "$home/reports/$sandbox-$v"
      cp -a "$home/uvfix-work/matrix" "$home/reports/$sandbox-$v"
    fi
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$home/reports/$sandbox-$v.log" | tail -n 1 || true)
    [ -n "$line" ] || line="no summary: $(grep -E '^error' "$home/reports/$sandbox-$v.log" | tail -n 1 || true)"
    summary+=("$(printf '%-16s %-9s exit %-3s %4ss  %s' "$sandbox" "$v" "$status" "$((SECONDS - job_start))" "$line")")
    if [ "$status" -ne 0 ]; then
      failed=$((failed + 1))
      echo "ci/as-runner: ci/job.sh $sandbox $v failed (exit $status); its log ends with:" >&2
      tail -n 25 "$home/reports/$sandbox-$v.log" >&2
    fi
  done
done

echo "ci/as-runner: jobs as $user (scenarios: $scenarios), logs and reports in $home/reports"
printf '%s\n' "${summary[@]}"
echo "ci/as-runner: $failed failed job(s), $((SECONDS - start)) s in all"
[ "$failed" -eq 0 ]
