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

/// Probes start real processes; a matrix asks for every cell, so remember the answer.
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
    // Computed outside the lock: probes take a while and may run concurrently for different
    // sandboxes; a duplicate probe of the same sandbox is harmless.
    let verdict = compute();
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(sandbox, verdict.clone());
    verdict
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
