//! `docker-ro`: a real container, the way people run uv in a read-only-home container.
//!
//! ```text
//! docker run --rm -i --read-only --network none --user UID:GID --tmpfs /tmp
//!   --volume HOME:HOME:ro        the home read-only, the cache (and its parent) with it
//!   --volume WS:WS --volume TMP:TMP        workspace and TMPDIR writable
//!   --volume PROG:PROG:ro        helper and program, unless under those or a system dir
//!   --workdir CWD --env K=V …    exactly the invocation's environment
//!   IMAGE PROG ARGS…
//! ```
//!
//! Denied writes get EROFS, for root inside the container too. With the cache absent, the
//! nearest existing parent (`~/.cache`) is on the read-only home mount as well, so the canary
//! proves the denial where uv would have to create the cache.
//!
//! The image is `$UVFIX_DOCKER_IMAGE`, default [`DEFAULT_IMAGE`], built from distribution
//! packages by `ci/docker-image.sh` and never pulled (no `--pull`, and the probe only inspects).
//! The container's Python is the image's: `UV_PYTHON` in the invocation names the host's
//! interpreter, which may not exist in the image, so it is replaced by the image's
//! interpreter, [`python`] (`$UVFIX_DOCKER_PYTHON`, default `/usr/bin/python3`). The script
//! builds the host's own distribution release, so that interpreter is the same Python version
//! as the host's one that warmed the cache and created the workspace's `.venv`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::policy::{Policy, sandbox_env};
use crate::probe::{find_in_path, run_probe, tool};
use crate::{Availability, Denial, Invocation, Layout};

/// Names another image (must be present locally: it is never pulled).
pub const IMAGE_ENV: &str = "UVFIX_DOCKER_IMAGE";
/// The tag `ci/docker-image.sh` points at the image it built or reused.
pub const DEFAULT_IMAGE: &str = "uvfix-python:current";
/// Names the interpreter inside the image.
pub const PYTHON_ENV: &str = "UVFIX_DOCKER_PYTHON";
pub const DEFAULT_PYTHON: &str = "/usr/bin/python3";

/// The image the containers run.
pub fn image() -> OsString {
    std::env::var_os(IMAGE_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.into())
}

/// The interpreter inside the image, which `UV_PYTHON` is mapped to.
pub fn python() -> PathBuf {
    std::env::var_os(PYTHON_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PYTHON), PathBuf::from)
}

/// `docker-ro`: see the module's documentation.
pub(crate) struct DockerReadOnly;

impl Policy for DockerReadOnly {
    fn name(&self) -> &str {
        "docker-ro"
    }

    fn denial(&self) -> Option<Denial> {
        Some(Denial::Erofs)
    }

    fn availability(&self) -> Availability {
        availability()
    }

    fn command(&self, layout: &Layout, helper: &Path, inv: &Invocation) -> Command {
        command(layout, helper, inv)
    }
}

/// One `docker image inspect`: it answers both questions (does an engine answer, is the image
/// there) in one process. Under nextest every test process asks, so no container is started
/// here; the canary of every cell starts one and proves the rest.
fn availability() -> Availability {
    if !cfg!(target_os = "linux") {
        return Availability::Unavailable(
            "docker-ro runs Linux containers with host-path mounts (Linux only)".into(),
        );
    }
    if find_in_path("docker").is_none() {
        return Availability::Unavailable(
            "docker CLI not installed: apt-get install docker.io, then ci/docker-engine.sh start \
             and ci/docker-image.sh"
                .into(),
        );
    }
    let mut inspect = Command::new(tool("docker"));
    inspect
        .args(["image", "inspect", "--format", "{{.Id}}"])
        .arg(image());
    match run_probe(inspect, Duration::from_secs(20)) {
        Ok(out) if out.success => Availability::Available,
        Ok(out) if out.text.contains("No such image") => Availability::Unavailable(format!(
            "docker image {:?} is not present and is never pulled: build it with \
             ci/docker-image.sh (or set {IMAGE_ENV} to a local image with {} in it)",
            image(),
            python().display()
        )),
        Ok(out) => {
            let last = out.text.lines().last().unwrap_or_default().to_owned();
            Availability::Unavailable(format!(
                "no usable Docker engine ({last}): start one with ci/docker-engine.sh start \
                 (as root it starts Debian's dockerd)"
            ))
        }
        Err(e) => Availability::Unavailable(e),
    }
}

/// `--volume=SRC:SRC[:ro]`: every path keeps its host name inside, so the layout, the
/// invocation and the cell's reports need no translation.
fn volume(src: &Path, read_only: bool) -> OsString {
    let mut v = OsString::from("--volume=");
    v.push(src);
    v.push(":");
    v.push(src);
    if read_only {
        v.push(":ro");
    }
    v
}

/// The container's environment: the invocation's, with `UV_PYTHON` pointing into the image.
fn container_env(inv: &Invocation) -> Vec<(OsString, OsString)> {
    let python = python();
    sandbox_env(inv)
        .into_iter()
        .map(|(key, value)| {
            if key == "UV_PYTHON" {
                (key, python.clone().into_os_string())
            } else {
                (key, value)
            }
        })
        .collect()
}

fn command(layout: &Layout, helper: &Path, inv: &Invocation) -> Command {
    // The docker client keeps the host environment (DOCKER_HOST, its config); the container
    // gets exactly the sandboxed environment through `--env`.
    let mut cmd = Command::new(tool("docker"));
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    cmd.args(["run", "--rm", "-i", "--read-only", "--network", "none"])
        .arg(format!("--user={uid}:{gid}"))
        // A writable /tmp as in the usual `--read-only --tmpfs /tmp`; TMPDIR is the layout's.
        .args(["--tmpfs", "/tmp"]);
    // A killed `docker run` client leaves its container running: the label lets whoever
    // cleans up after the run find and remove it (see `uvfix_run`).
    if let Some(store) = uvfix_run::journal::attached() {
        uvfix_run::journal::record(&uvfix_run::Entry::Docker);
        let mut label = OsString::from(format!("--label={}=", uvfix_run::store::DOCKER_LABEL));
        label.push(store);
        cmd.arg(label);
    }
    cmd.arg(volume(&layout.home, true));
    let shared = [&layout.home, &layout.workspace, &layout.tmp];
    for dir in &shared[1..] {
        cmd.arg(volume(dir, false));
    }
    for file in [helper, inv.program.as_path()] {
        // System programs (`/usr/bin/python3`, `/bin/sh`) are the image's own: mounting the
        // host's file over them would run the host's build inside the container.
        let system = ["/usr", "/bin", "/sbin", "/lib"]
            .iter()
            .any(|d| file.starts_with(d));
        if file.is_absolute()
            && file.exists()
            && !system
            && !shared.iter().any(|d| file.starts_with(d))
        {
            cmd.arg(volume(file, true));
        }
    }
    let mut workdir = OsString::from("--workdir=");
    workdir.push(&inv.cwd);
    cmd.arg(workdir);
    for (key, value) in container_env(inv) {
        let mut kv = key;
        kv.push("=");
        kv.push(value);
        cmd.arg("--env").arg(kv);
    }
    cmd.arg(image()).arg(&inv.program).args(&inv.args);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn home_is_read_only_and_uv_python_points_into_the_image() {
        let layout = Layout {
            home: "/c/home".into(),
            cache: "/c/home/.cache/uv".into(),
            workspace: "/c/ws".into(),
            tmp: "/c/tmp".into(),
        };
        let inv = Invocation {
            program: "/c/home/.local/bin/uv".into(),
            args: vec!["--version".into()],
            env: vec![
                ("UV_PYTHON".into(), "/opt/host/python3".into()),
                ("PATH".into(), "/usr/bin".into()),
            ],
            cwd: "/c/ws".into(),
        };
        let got = args(&command(&layout, Path::new("/opt/helper"), &inv));
        assert!(
            got.contains(&"--volume=/c/home:/c/home:ro".to_owned()),
            "{got:?}"
        );
        assert!(got.contains(&"--volume=/c/ws:/c/ws".to_owned()), "{got:?}");
        assert!(got.contains(&"--read-only".to_owned()), "{got:?}");
        // The program lives in the home mount already; no second mount for it.
        assert!(
            !got.iter().any(|a| a.contains("/c/home/.local/bin/uv:")),
            "{got:?}"
        );
        let want = format!("UV_PYTHON={}", python().display());
        assert!(got.contains(&want), "{got:?}");
        assert!(
            !got.iter().any(|a| a.contains("/opt/host/python3")),
            "{got:?}"
        );
    }
}
