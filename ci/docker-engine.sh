#!/usr/bin/env bash
# ci/docker-engine.sh start|stop
#
# The docker-ro sandbox needs a running Docker engine. GitHub's Linux runners have one; a
# Debian machine (like the one .ci/run runs on) usually has none. There, as root, `start`
# starts Debian's dockerd (package docker.io) in the background, records its pid and prints
# `started` on stdout; `stop` ends exactly that process and nothing else. An engine that was
# already running is left alone, and `start` then prints nothing, so a caller stops only what
# its own `start` started:
#
#   if [ "$(ci/docker-engine.sh start)" = started ]; then trap 'ci/docker-engine.sh stop' EXIT; fi
#
# Why these flags: no iptables and no default bridge (the machine may forbid both, and every
# container runs with --network none anyway); the daemon's state lives in its usual place, so
# an image built once (ci/docker-image.sh) survives restarts.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${UVFIX_WORK_DIR:-$PWD/target/uvfix}/docker
pidfile=$state/dockerd.pid
log=$state/dockerd.log

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "${1:-}" in
  start)
    if engine_up; then
      echo "ci/docker-engine: an engine is already running ($(docker version --format '{{.Server.Version}}')); using it" >&2
      exit 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
      echo "ci/docker-engine: no Docker engine answers and we are not root, so we cannot start one. Start dockerd (or add this user to the docker group) and rerun." >&2
      exit 1
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
      echo "ci/docker-engine: dockerd not installed: apt-get install docker.io" >&2
      exit 1
    fi
    mkdir -p "$state"
    # setsid: the daemon must not be in our process group (a Ctrl-C of the caller or a test
    # runner killing its group must not take the engine down half-way).
    # unshare --propagation slave: the daemon's mounts (each container's overlay rootfs) stay in
    # its own mount namespace, as docker.service's old `MountFlags=slave` did, while host mounts
    # still reach it. Otherwise bwrap's recursive read-only bind of `/` (ro-home, ro-root, srt,
    # codex-current cells) can meet a container's mount as it goes away and fail to start:
    # "Unable to apply mount flags: remount /newroot/var/lib/docker/overlay2/…/merged".
    setsid unshare --mount --propagation slave \
      dockerd --iptables=false --ip6tables=false --bridge=none >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 60); do
      if engine_up; then
        echo "ci/docker-engine: started dockerd (pid $(cat "$pidfile"), log $log)" >&2
        echo started
        exit 0
      fi
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "ci/docker-engine: dockerd exited at once; its log ($log) ends with:" >&2
        tail -n 15 "$log" >&2
        rm -f "$pidfile"
        exit 1
      fi
      sleep 0.5
    done
    echo "ci/docker-engine: dockerd (pid $(cat "$pidfile")) did not answer within 30 s; see $log" >&2
    exit 1
    ;;
  stop)
    # Only the engine we started: no pid file, nothing to do.
    [ -f "$pidfile" ] || exit 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      echo "ci/docker-engine: stopped dockerd (pid $pid)" >&2
    fi
    rm -f "$pidfile"
    ;;
  *)
    echo "usage: ci/docker-engine.sh start|stop" >&2
    exit 2
    ;;
esac
