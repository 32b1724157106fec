#!/usr/bin/env bash
# ci/docker-image.sh [--sources]
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
#
# Two forms. A file naming the distribution's hosts (and no mirror list) is used as it is.
# GitHub's x64 runners name none: their ubuntu.sources says `URIs: mirror+file:/etc/apt/apt-mirrors.txt`, a list of
# mirrors (`URI<TAB>priority:N` lines, azure.archive.ubuntu.com first). mmdebstrap runs apt
# inside the new root, where that list does not exist, so such a file is used as a copy with
# each `mirror+file:LIST` replaced by one mirror: $UVFIX_APT_MIRROR when given, else the first
# http(s) line of LIST. That mirror must be one of the distribution's hosts, unless it was
# given explicitly (any other mirror+… form needs $UVFIX_APT_MIRROR). $UVFIX_APT_DIR (default
# /etc/apt) is where the sources are read from; `--sources` prints the ones that would be used
# and exits (ci/as-runner.sh and the tests check the rewrite with it).
apt_dir=${UVFIX_APT_DIR:-/etc/apt}
distro_hosts='(deb\.debian\.org|security\.debian\.org|archive\.ubuntu\.com|security\.ubuntu\.com|ports\.ubuntu\.com)'
tmp=$(mktemp -d)
# The rootfs tarball in it is root's when we are not.
trap 'rm -rf "$tmp" 2>/dev/null || sudo_if_needed rm -rf "$tmp"' EXIT
mkdir "$tmp/sources"

# The mirror a `mirror+file:LIST` stands for.
mirror_for() {
  local list=$1 mirror
  if [ -n "${UVFIX_APT_MIRROR:-}" ]; then
    echo "$UVFIX_APT_MIRROR"
    return 0
  fi
  if [ ! -r "$list" ]; then
    echo "ci/docker-image: the apt sources use mirror+file:$list, which cannot be read here; name a mirror with UVFIX_APT_MIRROR=http://…" >&2
    return 1
  fi
  mirror=$(sed -e 's/#.*//' "$list" | awk '$1 ~ /^https?:\/\// { print $1; exit }')
  if [ -z "$mirror" ]; then
    echo "ci/docker-image: $list lists no http(s) mirror; name one with UVFIX_APT_MIRROR=http://…" >&2
    return 1
  fi
  if ! echo "$mirror" | grep -Eq "$distro_hosts"; then
    echo "ci/docker-image: the first mirror in $list ($mirror) is not a Debian or Ubuntu host; name the distribution's mirror with UVFIX_APT_MIRROR=http://…" >&2
    return 1
  fi
  echo "$mirror"
}

sources=()
for f in "$apt_dir"/sources.list "$apt_dir"/sources.list.d/*.list "$apt_dir"/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  if grep -Eq '^[^#]*[[:space:]:]mirror(\+[a-z]+)?:' "$f"; then
    copy=$tmp/sources/$(basename "$f")
    cp "$f" "$copy"
    lists=$(grep -Eo 'mirror\+file:[^[:space:]]+' "$f" | sort -u || true)
    while IFS= read -r list; do
      [ -n "$list" ] || continue
      mirror=$(mirror_for "${list#mirror+file:}")
      sed -i "s|$list|$mirror|g" "$copy"
    done <<<"$lists"
    if grep -Eq '^[^#]*[[:space:]:]mirror(\+[a-z]+)?:' "$copy"; then
      if [ -z "${UVFIX_APT_MIRROR:-}" ]; then
        echo "ci/docker-image: $f names a mirror list we cannot read offline ($(grep -Eo 'mirror(\+[a-z]+)?:[^[:space:]]+' "$copy" | head -n 1)); name a mirror with UVFIX_APT_MIRROR=http://…" >&2
        exit 1
      fi
      sed -i -E "s#mirror(\+[a-z]+)?:[^[:space:]]+#$UVFIX_APT_MIRROR#g" "$copy"
    fi
    sources+=("$copy")
  elif grep -Eq "^[^#]*$distro_hosts" "$f"; then
    sources+=("$f")
  fi
done
[ "${#sources[@]}" -gt 0 ] || {
  echo "ci/docker-image: no Debian or Ubuntu apt sources in $apt_dir; cannot bootstrap a $ID $suite image" >&2
  exit 1
}
if [ "${1:-}" = --sources ]; then
  for f in "${sources[@]}"; do echo "# $f"; cat "$f"; done
  exit 0
fi

hash=$( { cat "$0"; echo "$ID $suite $arch"; cat "${sources[@]}"; } | sha256sum | cut -c1-16)
image=uvfix-python:$ID-$suite-$hash

if ! docker image inspect "$image" >/dev/null 2>&1; then
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "ci/docker-image: mmdebstrap not installed: apt-get install mmdebstrap" >&2
    exit 1
  fi
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
