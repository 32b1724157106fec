#!/usr/bin/env bash
# Let unprivileged processes create user namespaces, which bubblewrap (the ro-home and
# ro-root sandboxes, Claude Code's `srt`) needs.
#
# Ubuntu 24.04 restricts unprivileged user namespaces through AppArmor
# (kernel.apparmor_restrict_unprivileged_userns=1): without an AppArmor profile granting
# `userns`, bwrap fails with "setting up uid map: Permission denied". The GitHub runner is a
# throwaway VM, so we lift the restriction for the job rather than install a profile for a
# binary path. Elsewhere (Debian, containers, older kernels) the sysctl does not exist and
# this does nothing.
set -euo pipefail
key=kernel.apparmor_restrict_unprivileged_userns
if [ "$(uname -s)" != Linux ] || [ ! -e "/proc/sys/${key//.//}" ]; then
  exit 0
fi
if [ "$(cat "/proc/sys/${key//.//}")" = 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sysctl -w "$key=0"; else sudo sysctl -w "$key=0"; fi
