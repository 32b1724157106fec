#!/usr/bin/env bash
# ci/as-runner.sh [SANDBOX...]
#
# The matrix's cell jobs as GitHub runs them: each on a fresh runner. Root hides bugs a runner
# meets (root ignores mode bits, may set the immutable attribute, may start an engine), and so
# does a machine where things are already installed, so each `ci/job.sh <sandbox> <uv>` runs
# here as an unprivileged user with passwordless sudo, in the docker group, and with nothing
# of this machine's installs. Run as root (it creates the user); used by .ci/run.
#
#   SANDBOX...              default: every Linux sandbox of the GitHub matrix
#   UVFIX_RUNNER_USER       the user (default uvfix-runner; created if missing)
#   UVFIX_RUNNER_UVS        uv builds (default "patched pristine")
#   UVFIX_RUNNER_SCENARIOS  scenarios (default all: S1-S10, every cache state, as GitHub runs
#                           them); e.g. S1,S4,S7 for a quicker look
#   UVFIX_RUNNER_QUICK      sandboxes that run only S1,S4,S7 (the report's command, a tool,
#                           `uv pip install`), every cache state; default none. .ci/run names
#                           the ones whose denial does not depend on who runs them, to fit
#                           its time budget
#   UVFIX_RUNNER_STATE      what outlives a job (default /var/tmp/uvfix-runner), see below
#
# What a job gets, as on a fresh runner:
# - an empty $HOME (npm's prefix and cache, ~/.cargo/bin, … start empty) and a fresh checkout
#   of this tree's tracked and untracked, not ignored files (actions/checkout), both made anew
#   for every job: whatever a job needs, its own steps install (the workflow's
#   ci/install-deps.sh and ci/allow-userns.sh through sudo, then ci/job.sh, which installs the
#   cell's npm sandbox, builds or finds the docker-ro image, …);
# - apt sources in the x64 runner's form, `URIs: mirror+file:/etc/apt/apt-mirrors.txt`: the
#   distribution's main archive in /etc/apt is rewritten so for the run, and put back when
#   the run ends, fails or is interrupted (a run killed too hard to do that is put back by
#   the next one, before anything else);
# - the uv builds as the matrix workflow's artifact hands them over (UVFIX_UV_PATCHED and
#   UVFIX_UV_PRISTINE, else `cargo xtask uv-path`);
# - Rust: this machine's toolchain, hard-linked to /opt/uvfix-runner-rust (root's rustup home
#   is not readable by others). What rust-cache restores on GitHub outlives a job here too:
#   the user's CARGO_HOME (crates from crates.io) and target dir, under UVFIX_RUNNER_STATE.
# Reports land in UVFIX_RUNNER_STATE/reports/<sandbox>-<uv>/; the last lines are a table of the
# jobs and the time they took.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "ci/as-runner: run as root: it creates the unprivileged user the jobs run as" >&2
  exit 2
fi
user=${UVFIX_RUNNER_USER:-uvfix-runner}
read -r -a uvs <<<"${UVFIX_RUNNER_UVS:-patched pristine}"
scenarios=${UVFIX_RUNNER_SCENARIOS:-all}
state=${UVFIX_RUNNER_STATE:-/var/tmp/uvfix-runner}
sandboxes=("$@")
if [ "${#sandboxes[@]}" -eq 0 ]; then
  sandboxes=(none landlock ro-home ro-root foreign-owner codex codex-current sandbox-runtime docker-ro)
fi
start=$SECONDS

# --- apt sources in the runner's mirror+file: form, for the run only -----------------------
apt_backup=$state/apt-backup
mirror_list=/etc/apt/apt-mirrors.txt
restore_apt() {
  [ -d "$apt_backup" ] || return 0
  if [ -d "$apt_backup/files" ]; then
    cp -a "$apt_backup/files/." /etc/apt/
  fi
  if [ -f "$apt_backup/created-mirror-list" ]; then
    rm -f "$mirror_list"
  fi
  rm -rf "$apt_backup"
  echo "ci/as-runner: /etc/apt restored" >&2
}
if [ -d "$apt_backup" ]; then
  echo "ci/as-runner: an earlier run did not put /etc/apt back; doing it now" >&2
  restore_apt
fi
trap restore_apt EXIT
# A signal ends the running job (its own process group: `set -m`), then the script, through
# the EXIT trap, which restores. Without this bash would wait for the job to end first.
job_pid=""
on_signal() {
  if [ -n "$job_pid" ]; then kill -TERM -- "-$job_pid" 2>/dev/null || true; fi
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
if [ -e "$mirror_list" ]; then
  echo "ci/as-runner: $mirror_list exists already: the apt sources stay as they are" >&2
else
  mkdir -p "$apt_backup/files/sources.list.d"
  touch "$apt_backup/created-mirror-list"
  archive='https?://(deb\.debian\.org/debian|([a-z]+\.)*archive\.ubuntu\.com/ubuntu|ports\.ubuntu\.com/ubuntu-ports)/?'
  mirror=""
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    found=$(grep -v '^[[:space:]]*#' "$f" | grep -Eo "(URIs:[[:space:]]*|deb([[:space:]]+\[[^]]*\])?[[:space:]]+)$archive([[:space:]]|$)" \
      | grep -Eo "$archive" | head -n 1 || true)
    [ -n "$found" ] || continue
    cp -a "$f" "$apt_backup/files/${f#/etc/apt/}"
    sed -i -E "s#(URIs:[[:space:]]*|deb([[:space:]]+\[[^]]*\])?[[:space:]]+)$found([[:space:]]|\$)#\1mirror+file:$mirror_list\3#" "$f"
    mirror=${mirror:-$found}
  done
  if [ -n "$mirror" ]; then
    printf '%s\tpriority:1\n' "$mirror" >"$mirror_list"
    echo "ci/as-runner: apt sources now name mirror+file:$mirror_list ($mirror), as on GitHub's x64 runners" >&2
  else
    echo "ci/as-runner: no Debian or Ubuntu archive in /etc/apt to put behind a mirror list" >&2
  fi
fi

# --- the user, as GitHub's `runner` ----------------------------------------------------------
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
# Every job empties this directory: it must be the user's own home, nothing else.
if [ -z "$home" ] || [ "$home" = / ] || [ "$(stat -c %U "$home" 2>/dev/null)" != "$user" ]; then
  echo "ci/as-runner: $user's home '$home' is not a directory of its own; not emptying it" >&2
  exit 1
fi

# Rust, readable by the user.
sysroot=$(rustc --print sysroot)
rust=/opt/uvfix-runner-rust/$(rustc --version | cut -d' ' -f2)
if [ ! -x "$rust/bin/cargo" ]; then
  mkdir -p "$(dirname "$rust")"
  cp -al "$sysroot/." "$rust.partial" 2>/dev/null || cp -a "$sysroot/." "$rust.partial"
  mv "$rust.partial" "$rust"
fi

# The uv builds, as the build job's artifact (building them needs this checkout's lock).
artifacts=$state/artifacts
rm -rf "$artifacts"
mkdir -p "$artifacts"
for v in "${uvs[@]}"; do
  case "$v" in
    patched | pristine)
      case "$v" in patched) given=${UVFIX_UV_PATCHED:-} ;; *) given=${UVFIX_UV_PRISTINE:-} ;; esac
      bin=${given:-$(cargo xtask uv-path "$v")}
      install -D -m 0755 "$bin" "$artifacts/$v/uv"
      install -D -m 0755 "$(dirname "$bin")/uvx" "$artifacts/$v/uvx"
      ;;
  esac
done
mkdir -p "$state/cargo-home" "$state/target" "$state/reports"
chown "$user:" "$state/cargo-home" "$state/target"
chmod -R a+rX "$artifacts"
rm -rf "${state:?}/reports/"*

# A fresh runner: an empty home, holding a fresh checkout.
checkout=$home/work/uvfix
fresh_runner() {
  rm -rf "$home"
  mkdir -p "$checkout"
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$checkout"
  chown -R "$user:" "$home"
}

# The machine's TLS trust, where it is set through the environment (a registry proxy with
# its own CA): the runner's tools need it to reach crates.io, PyPI and npm, as root's do.
# Settings of this machine, not installs; GitHub's runners trust the registries as they are.
trust=()
for var in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE PIP_CERT GIT_SSL_CAINFO; do
  if [ -n "${!var:-}" ]; then trust+=("$var=${!var}"); fi
done

as_user() {
  sudo -u "$user" -H env -i HOME="$home" USER="$user" LOGNAME="$user" CI=true \
    ${trust[@]+"${trust[@]}"} \
    PATH="$rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    CARGO_HOME="$state/cargo-home" CARGO_TARGET_DIR="$state/target" CARGO_TERM_COLOR=never \
    UVFIX_WORK_DIR="$checkout/uvfix-work" \
    UVFIX_UV_PATCHED="$artifacts/patched/uv" UVFIX_UV_PRISTINE="$artifacts/pristine/uv" \
    bash -c 'cd "$1" && shift && "$@"' as-runner "$checkout" "$@"
}

fresh_runner
echo "ci/as-runner: as $(as_user id -un) (uid $(as_user id -u), groups: $(as_user id -Gn))" >&2
read -r -a quick <<<"${UVFIX_RUNNER_QUICK:-}"

summary=()
failed=0
for sandbox in "${sandboxes[@]}"; do
  for v in "${uvs[@]}"; do
    job_start=$SECONDS
    these=$scenarios
    for q in ${quick[@]+"${quick[@]}"}; do [ "$q" != "$sandbox" ] || these=S1,S4,S7; done
    scenario_args=()
    [ "$these" = all ] || scenario_args=(--scenario "$these")
    fresh_runner
    log=$state/reports/$sandbox-$v.log
    status=0
    set -m
    (
      # The workflow's steps: the system tools and user namespaces, then the job.
      as_user ci/install-deps.sh &&
        as_user ci/allow-userns.sh &&
        as_user ci/job.sh "$sandbox" "$v" ${scenario_args[@]+"${scenario_args[@]}"} --jobs 2
    ) >"$log" 2>&1 &
    job_pid=$!
    set +m
    wait "$job_pid" || status=$?
    job_pid=""
    if [ -d "$checkout/uvfix-work/matrix" ]; then
      cp -a "$checkout/uvfix-work/matrix" "$state/reports/$sandbox-$v"
    fi
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
    [ -n "$line" ] || line="no summary; the log ends: $(tail -n 1 "$log")"
    # Disk is what a runner runs out of first: the most the job's store of warm caches held.
    peak=$(grep -Eo 'store of warm caches: peak [0-9.]+ GB' "$log" | tail -n 1 | grep -Eo '[0-9.]+ GB' || true)
    [ -z "$peak" ] || line="$line; store peak $peak"
    summary+=("$(printf '%-16s %-9s %-9s exit %-3s %4ss  %s' "$sandbox" "$v" "$these" "$status" "$((SECONDS - job_start))" "$line")")
    if [ "$status" -ne 0 ]; then
      failed=$((failed + 1))
      echo "ci/as-runner: ci/job.sh $sandbox $v failed (exit $status); its log ends with:" >&2
      tail -n 25 "$log" >&2
    fi
  done
done
# Nothing of the last job stays in the user's home.
rm -rf "$home"
mkdir -p "$home"
chown "$user:" "$home"

echo "ci/as-runner: fresh-runner jobs as $user, logs and reports in $state/reports"
printf '%s\n' "${summary[@]}"
echo "ci/as-runner: $failed failed job(s), $((SECONDS - start)) s in all"
[ "$failed" -eq 0 ]
