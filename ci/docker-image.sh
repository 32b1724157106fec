#!/usr/bin/env bash
# ci/docker-image.sh
#
# The image of the docker-ro sandbox, built from distribution packages and imported; never
# pulled (the machine .ci/run runs on reaches no image registry, and a pulled tag can change
# under us). Prints the image reference on the last line, ready for UVFIX_DOCKER_IMAGE.
#
# The image is the host's own distribution and release (Debian bookworm here, Ubuntu noble on
# GitHub's runners), bootstrapped from the host's own apt sources with mmdebstrap
# --variant=minbase --include=python3: the warm steps run uv with the host's /usr/bin/python3
# and the container runs the image's /usr/bin/python3, so both must be the same Python (same
# version, same venv layout) or a warm `.venv` would not fit the interpreter inside.
#
# Cached by content: the tag is a hash of this script, the release, the architecture and the
# apt sources used. An image with that tag is reused as it is; anything else changed builds a
# new one. `uvfix-python:current` always points at the last one built or reused, and is the
# sandbox's default image.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# shellcheck disable=SC1091 # the host's, not ours
. /etc/os-release
suite=${VERSION_CODENAME:?/etc/os-release names no VERSION_CODENAME}
arch=$(dpkg --print-architecture)

# The distribution's own sources only: third-party repositories on the host (GitHub's runners
# carry several) have keys and suites of their own that mean nothing inside the image.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  if grep -Eq '^[^#]*(deb\.debian\.org|security\.debian\.org|archive\.ubuntu\.com|security\.ubuntu\.com|ports\.ubuntu\.com)' "$f"; then
    sources+=("$f")
  fi
done
[ "${#sources[@]}" -gt 0 ] || {
  echo "ci/docker-image: no Debian or Ubuntu apt sources in /etc/apt; cannot bootstrap a $ID $suite image" >&2
  exit 1
}

hash=$( { cat "$0"; echo "$ID $suite $arch"; cat "${sources[@]}"; } | sha256sum | cut -c1-16)
image=uvfix-python:$ID-$suite-$hash

if ! docker image inspect "$image" >/dev/null 2>&1; then
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "ci/docker-image: mmdebstrap not installed: apt-get install mmdebstrap" >&2
    exit 1
  fi
  tmp=$(mktemp -d)
  trap 'sudo_if_needed rm -rf "$tmp"' EXIT
  echo "ci/docker-image: bootstrapping $ID $suite ($arch) with python3 into $image" >&2
  start=$SECONDS
  # Root mode (plain chroot) works everywhere we run; the tarball is then owned by root.
  sudo_if_needed mmdebstrap --quiet --mode=root --variant=minbase --include=python3 \
    --aptopt='Acquire::Retries "3"' "$suite" "$tmp/rootfs.tar" "${sources[@]}"
  sudo_if_needed chmod a+r "$tmp/rootfs.tar"
  docker import --change 'CMD ["/usr/bin/python3"]' "$tmp/rootfs.tar" "$image" >/dev/null
  echo "ci/docker-image: built $image in $((SECONDS - start)) s" >&2
fi
docker tag "$image" uvfix-python:current
echo "$image"
