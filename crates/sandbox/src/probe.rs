//! Small host-side utilities shared by the policies: locating tools, running availability probes
//! with a time limit, and caching their verdicts.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::{Availability, Sandbox};

/// `PATH` for the sandboxed command when neither the caller nor the host has one.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Probes start real processes; a matrix asks for every cell, so remember the answer: in this
/// process, and for [`SHARED_FOR`] across processes (see [`shared_file`]).
pub(crate) fn cached(sandbox: Sandbox, compute: impl FnOnce() -> Availability) -> Availability {
    static CACHE: OnceLock<Mutex<HashMap<Sandbox, Availability>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&sandbox)
    {
        return hit.clone();
    }
    let shared = shared_file(sandbox);
    // Computed outside the lock: probes take a while and may run concurrently for different
    // sandboxes; a duplicate probe of the same sandbox is harmless.
    let verdict = match shared.as_deref().and_then(read_shared) {
        Some(verdict) => verdict,
        None => {
            let verdict = compute();
            // Only "available" is shared: a sandbox that comes up (an engine started a moment
            // ago) is never skipped on an older answer. Best effort: unshared, it is probed again.
            if let (Some(path), Availability::Available) = (&shared, &verdict) {
                let _ = write_shared(path, &verdict);
            }
            verdict
        }
    };
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(sandbox, verdict.clone());
    verdict
}

/// How long a verdict one process found is taken by the next ones.
///
/// Under nextest every test is its own process, and each one asks about every sandbox (the
/// test list is the matrix): a real `codex sandbox`, `srt` and `bwrap` run per process added
/// seconds to each of ~1700 tests. Only "available" is shared, and that is safe: a sandbox
/// that broke since still has to pass every cell's canary, so it fails, never passes.
/// `UVFIX_PROBE_SHARE=0` turns sharing off.
const SHARED_FOR: Duration = Duration::from_secs(60);

/// `$TMPDIR/uvfix-probes-UID/NAME-HASH`, the hash over everything a verdict depends on.
/// `None` for custom sandboxes (their names are per process) or when sharing is off.
fn shared_file(sandbox: Sandbox) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    if matches!(sandbox, Sandbox::Custom(_))
        || std::env::var_os("UVFIX_PROBE_SHARE").is_some_and(|v| v == "0")
    {
        return None;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sandbox.name().hash(&mut hasher);
    for var in [
        "PATH",
        "DOCKER_HOST",
        "UVFIX_DOCKER_IMAGE",
        "UVFIX_DOCKER_PYTHON",
        "UVFIX_CODEX",
        "UVFIX_CODEX_CURRENT",
        "UVFIX_SRT",
    ] {
        std::env::var_os(var).hash(&mut hasher);
    }
    // The npm prefixes are found relative to this crate.
    env!("CARGO_MANIFEST_DIR").hash(&mut hasher);
    let uid = rustix::process::geteuid().as_raw();
    Some(
        std::env::temp_dir()
            .join(format!("uvfix-probes-{uid}"))
            .join(format!("{}-{:016x}", sandbox.name(), hasher.finish())),
    )
}

/// A fresh verdict from a directory that is ours alone (owner and mode checked: another user
/// must not be able to plant verdicts).
fn read_shared(path: &Path) -> Option<Availability> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = fs_err::metadata(path.parent()?).ok()?;
    if dir.uid() != rustix::process::geteuid().as_raw() || dir.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let age = fs_err::metadata(path)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    if age > SHARED_FOR {
        return None;
    }
    let text = fs_err::read_to_string(path).ok()?;
    match text.split_once('\n') {
        Some(("available", _)) => Some(Availability::Available),
        Some(("unavailable", reason)) => Some(Availability::Unavailable(reason.to_owned())),
        _ => None,
    }
}

fn write_shared(path: &Path, verdict: &Availability) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if fs_err::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        return Ok(());
    }
    let text = match verdict {
        Availability::Available => "available\n".to_owned(),
        Availability::Unavailable(reason) => format!("unavailable\n{reason}"),
    };
    // A private name, then rename: a concurrent reader never sees half a verdict.
    let partial = dir.join(format!(".partial-{}", std::process::id()));
    fs_err::write(&partial, text)?;
    fs_err::rename(&partial, path)
}

/// Look `name` up in the host's `PATH` (not the sandboxed command's, which the caller controls):
/// the wrappers must be found even when the command gets a minimal `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The tool's absolute path if found, else the bare name, so that spawning fails with the tool's
/// name in the error instead of something obscure.
pub(crate) fn tool(name: &str) -> PathBuf {
    find_in_path(name).unwrap_or_else(|| PathBuf::from(name))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the current process runs with euid 0: the one answer every crate uses.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Outcome of a probe: exit success, combined stdout+stderr.
pub(crate) struct ProbeOutput {
    pub success: bool,
    pub text: String,
}

/// Run a probe command with a time limit (a `docker info` against a dead `DOCKER_HOST` can
/// hang), through the fixture's one process runner.
pub(crate) fn run_probe(mut cmd: Command, limit: Duration) -> Result<ProbeOutput, String> {
    let shown = uvfix_process::shown(&cmd);
    let out = uvfix_process::run(&mut cmd, Some(limit)).map_err(|e| e.to_string())?;
    if out.timed_out {
        return Err(format!("{shown} did not finish within {limit:?}"));
    }
    let mut text = out.stdout_text();
    text.push_str(&out.stderr_text());
    Ok(ProbeOutput {
        success: out.success(),
        text: text.trim().to_owned(),
    })
}

/// A command that runs `script`, going through `node` explicitly when it is a `#!/usr/bin/env node`
/// script: npm's `.bin` shims rely on `node` being on the *command's* `PATH`, which the caller of
/// the sandbox controls; this way only the host needs node.
pub(crate) fn script_command(script: &Path) -> Command {
    let is_node = fs_err::read(script)
        .map(|bytes| bytes.starts_with(b"#!/usr/bin/env node"))
        .unwrap_or(false);
    match (is_node, find_in_path("node")) {
        (true, Some(node)) => {
            let mut cmd = Command::new(node);
            // Canonical path: the npm shims find their vendored binaries next to the real file.
            cmd.arg(fs_err::canonicalize(script).unwrap_or_else(|_| script.to_path_buf()));
            cmd
        }
        _ => Command::new(script),
    }
}

/// Quote a path as a TOML string (codex `-c key=value` parses the value as TOML).
pub(crate) fn toml_string(s: &OsStr) -> String {
    toml::Value::String(s.to_string_lossy().into_owned()).to_string()
}

/// Quote a path as a JSON string (srt settings).
pub(crate) fn json_string(s: &OsStr) -> String {
    serde_json::Value::String(s.to_string_lossy().into_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        let tricky = r#"/a "b"\c"#;
        let toml_doc = format!("k = {}", toml_string(OsStr::new(tricky)));
        let parsed: toml::Table = toml_doc.parse().unwrap();
        assert_eq!(parsed["k"].as_str(), Some(tricky));
        let json: serde_json::Value =
            serde_json::from_str(&json_string(OsStr::new("/a\"\n"))).unwrap();
        assert_eq!(json.as_str(), Some("/a\"\n"));
    }

    #[test]
    fn shared_verdicts_round_trip_and_expire() {
        let dir = tempfile::Builder::new().tempdir().unwrap();
        let private = dir.path().join("probes");
        let path = private.join("x");
        let verdict = Availability::Unavailable("no tool\nsecond line".into());
        write_shared(&path, &verdict).unwrap();
        assert_eq!(read_shared(&path), Some(verdict));
        write_shared(&path, &Availability::Available).unwrap();
        assert_eq!(read_shared(&path), Some(Availability::Available));
        // Too old: probed again.
        let old = std::time::SystemTime::now() - SHARED_FOR - Duration::from_secs(5);
        fs_err::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(read_shared(&path), None);
        // A directory others may write to is not trusted.
        use std::os::unix::fs::PermissionsExt;
        write_shared(&path, &Availability::Available).unwrap();
        fs_err::set_permissions(&private, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(read_shared(&path), None);
    }

    #[test]
    fn probe_reports_failure_and_timeout() {
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_probe(sh, Duration::from_secs(10)).unwrap();
        assert!(!out.success);
        assert!(out.text.contains("out") && out.text.contains("err"));

        let mut sleep = Command::new("/bin/sh");
        sleep.args(["-c", "sleep 5"]);
        let err = run_probe(sleep, Duration::from_millis(100)).err().unwrap();
        assert!(err.contains("did not finish"), "{err}");
    }
}
