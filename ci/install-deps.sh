#!/usr/bin/env bash
# Install what the fixture needs on a fresh Debian/Ubuntu machine (as root, or with sudo).
# Idempotent: anything already present is left alone. Used by .ci/run, the GitHub
# workflows and people alike.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# bubblewrap: the ro-home and ro-root sandboxes (and Codex's and Claude Code's own sandboxes).
# strace: the write-syscall benchmark; valgrind: the benchmark's instruction counts (callgrind).
# ripgrep + socat: required by Claude Code's `srt`.
# patch: `cargo xtask upstream forward release|checkout` reports per-hunk offset/fuzz with GNU patch.
# e2fsprogs (chattr): the immutable sandbox, EPERM on Linux.
# docker.io (dockerd) + mmdebstrap: the docker-ro sandbox's engine and image
# (ci/docker-engine.sh, ci/docker-image.sh). A machine that already has an engine (GitHub's
# runners ship Docker's own packages, which docker.io would conflict with) keeps it.
need=()
for pair in bwrap:bubblewrap strace:strace valgrind:valgrind rg:ripgrep socat:socat patch:patch git:git setpriv:util-linux chattr:e2fsprogs dockerd:docker.io mmdebstrap:mmdebstrap; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "ci/install-deps: installing ${need[*]}"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "ci/install-deps: cargo not found. Install Rust with rustup (https://rustup.rs), then rerun." >&2
  exit 1
fi
# Not cargo-nextest: most jobs never run it, and a build from source costs minutes. The jobs
# that run it install it prebuilt (taiki-e/install-action); .ci/run builds it when missing.
