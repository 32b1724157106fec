//! Sandboxes built by other projects, used as their users use them. Each is detected and probed;
//! when it cannot run here, [`crate::Sandbox::availability`] says why.
//!
//! * `codex`: Codex CLI (npm `@openai/codex`), `codex sandbox linux --full-auto`: network off
//!   (seccomp), writable roots = cwd + TMPDIR + `/tmp` by default. `/tmp` is excluded
//!   (`exclude_slash_tmp`) because the layout lives under `/tmp` in tests and would make the
//!   cache writable; workspace and TMPDIR are listed explicitly. Version 0.63.0 is the Landlock
//!   generation (EACCES). Found via `$UVFIX_CODEX`, then `PATH`, then
//!   `target/uvfix/npm/node_modules/.bin/codex` under the workspace root. Codex always makes the
//!   cwd writable too, so the cwd must not be inside `$HOME` (the canary would catch it).
//! * `codex-current`: Codex CLI's current release ([`CODEX_CURRENT_VERSION`], npm, installed
//!   to `target/uvfix/npm-codex-current` or named by `$UVFIX_CODEX_CURRENT`): `codex sandbox -P
//!   uvfix -c 'permissions.uvfix.filesystem={"/"="read",WS="write",TMP="write"}' -C CWD --`,
//!   bubblewrap + seccomp, EROFS. Its built-in `:workspace` profile makes all of `/tmp` writable
//!   (the cells live there) and ignores extra writable roots, hence a profile of our own. Newer
//!   releases dropped the `linux` subcommand and `--full-auto` that 0.63.0 takes.
//! * `sandbox-runtime`: Anthropic's `srt` (npm `@anthropic-ai/sandbox-runtime`), bubblewrap
//!   based (needs `bwrap`, `rg`, `socat`). `srt --settings FILE -- PROG ARGS` with
//!   `allowWrite = [workspace, tmp]`, `denyWrite = [cache]`, no allowed domains (offline). The
//!   settings file is written by [`crate::Sandbox::command`] next to `layout.tmp` (in the cell's
//!   root; `$TMPDIR/uvfix-srt-UID/` if that is `/` or the system temp dir).
//!   srt overrides `TMPDIR` with `/tmp/claude` and adds proxy variables. Found via `$UVFIX_SRT`,
//!   `PATH`, then the npm dir like codex.
//! * `seatbelt`: macOS `sandbox-exec -p` with `(allow default)`, `(deny file-write* (subpath
//!   HOME))` and `(deny network*)`; EPERM. Unavailable on every other OS.
//!
//! npm scripts are started through the host's `node` (see `probe::script_command`), so the
//! sandboxed command's `PATH` need not contain node.

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::policy::{Policy, base_command, sandbox_env};
use crate::probe::{
    find_in_path, is_executable, json_string, run_probe, script_command, toml_string,
};
use crate::{Availability, Denial, Invocation, Layout};

/// The fixture's npm prefix, where `cargo xtask` (or a developer) installs the npm sandboxes.
fn npm_bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/uvfix/npm/node_modules/.bin")
        .join(name)
}

/// `$VAR`, then `PATH`, then the fixture's npm dir.
fn locate(var: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "${var} is set to {} but that is not an executable file",
                path.display()
            ))
        };
    }
    find_in_path(name)
        .or_else(|| Some(npm_bin(name)).filter(|p| is_executable(p)))
        .ok_or_else(|| {
            format!(
                "{name} not found in ${var}, PATH or {}",
                npm_bin(name).display()
            )
        })
}

fn located(var: &str, name: &str) -> PathBuf {
    locate(var, name).unwrap_or_else(|_| PathBuf::from(name))
}

/// Run a short real sandboxed `/bin/sh -c :` through the tool: installed is not "works".
fn smoke(mut cmd: Command, what: &str) -> Availability {
    cmd.current_dir(std::env::temp_dir());
    match run_probe(cmd, Duration::from_secs(60)) {
        Ok(out) if out.success => Availability::Available,
        Ok(out) => Availability::Unavailable(format!("{what} fails here: {}", out.text)),
        Err(e) => Availability::Unavailable(format!("{what}: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// codex

const CODEX_INSTALL: &str = "npm install --prefix target/uvfix/npm @openai/codex@0.63.0";

/// `codex`: Codex CLI 0.63.0, `codex sandbox linux --full-auto`.
pub(crate) struct Codex;

impl Policy for Codex {
    fn name(&self) -> &str {
        "codex"
    }

    /// EACCES for the Landlock generation (0.63.0, the one this fixture installs); a newer,
    /// bubblewrap-based codex would show EROFS and its canary then fails with
    /// [`crate::SandboxError::WrongDenial`] instead of passing unnoticed.
    fn denial(&self) -> Option<Denial> {
        Some(Denial::Eacces)
    }

    fn availability(&self) -> Availability {
        codex_availability()
    }

    fn command(&self, layout: &Layout, _helper: &Path, inv: &Invocation) -> Command {
        codex(layout, inv)
    }
}

fn codex_availability() -> Availability {
    if !cfg!(target_os = "linux") {
        return Availability::Unavailable(
            "the codex policy drives `codex sandbox linux` (Linux only)".into(),
        );
    }
    let codex = match locate("UVFIX_CODEX", "codex") {
        Ok(codex) => codex,
        Err(e) => return Availability::Unavailable(format!("{e}: {CODEX_INSTALL}")),
    };
    let mut probe = script_command(&codex);
    probe.args(codex_policy_args(&[std::env::temp_dir()]));
    probe.args(["--", "/bin/sh", "-c", ":"]);
    smoke(probe, "`codex sandbox linux`")
}

fn codex_policy_args(writable: &[PathBuf]) -> Vec<OsString> {
    let roots: Vec<String> = writable
        .iter()
        .map(|p| toml_string(p.as_os_str()))
        .collect();
    [
        "sandbox".to_owned(),
        "linux".to_owned(),
        "--full-auto".to_owned(),
        "-c".to_owned(),
        "sandbox_workspace_write.exclude_slash_tmp=true".to_owned(),
        "-c".to_owned(),
        format!(
            "sandbox_workspace_write.writable_roots=[{}]",
            roots.join(",")
        ),
    ]
    .map(OsString::from)
    .to_vec()
}

fn codex(layout: &Layout, inv: &Invocation) -> Command {
    let mut cmd = script_command(&located("UVFIX_CODEX", "codex"));
    cmd.env_clear().envs(sandbox_env(inv)).current_dir(&inv.cwd);
    cmd.args(codex_policy_args(&[
        layout.workspace.clone(),
        layout.tmp.clone(),
    ]));
    cmd.arg("--").arg(&inv.program).args(&inv.args);
    cmd
}

// ---------------------------------------------------------------------------------------------
// codex-current: Codex CLI's current release (bubblewrap)

/// The release `ci/install-sandboxes.sh` installs for the `codex-current` column.
pub const CODEX_CURRENT_VERSION: &str = "0.171.0";
const CODEX_CURRENT_PREFIX: &str = "target/uvfix/npm-codex-current";

/// `codex-current`: Codex CLI's current release, `codex sandbox -P uvfix`.
pub(crate) struct CodexCurrent;

impl Policy for CodexCurrent {
    fn name(&self) -> &str {
        "codex-current"
    }

    fn denial(&self) -> Option<Denial> {
        Some(Denial::Erofs)
    }

    fn availability(&self) -> Availability {
        codex_current_availability()
    }

    fn command(&self, layout: &Layout, _helper: &Path, inv: &Invocation) -> Command {
        codex_current(layout, inv)
    }
}

fn codex_current_install() -> String {
    format!(
        "npm install --prefix {CODEX_CURRENT_PREFIX} @openai/codex@{CODEX_CURRENT_VERSION} \
         (ci/install-sandboxes.sh)"
    )
}

/// `$UVFIX_CODEX_CURRENT`, else the fixture's own prefix. Not `PATH`: a `codex` found there may
/// be either generation, and 0.63.0 has a column of its own.
fn locate_codex_current() -> Result<PathBuf, String> {
    let own = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(CODEX_CURRENT_PREFIX)
        .join("node_modules/.bin/codex");
    match std::env::var_os("UVFIX_CODEX_CURRENT").filter(|v| !v.is_empty()) {
        Some(path) if is_executable(Path::new(&path)) => Ok(PathBuf::from(path)),
        Some(path) => Err(format!(
            "$UVFIX_CODEX_CURRENT is set to {} but that is not an executable file",
            Path::new(&path).display()
        )),
        None if is_executable(&own) => Ok(own),
        None => Err(format!(
            "codex not found in $UVFIX_CODEX_CURRENT or {}",
            own.display()
        )),
    }
}

fn codex_current_availability() -> Availability {
    if !cfg!(target_os = "linux") {
        return Availability::Unavailable(
            "the codex-current column drives Codex's Linux sandbox (bubblewrap)".into(),
        );
    }
    let codex = match locate_codex_current() {
        Ok(codex) => codex,
        Err(e) => return Availability::Unavailable(format!("{e}: {}", codex_current_install())),
    };
    let dir = std::env::temp_dir();
    let mut probe = script_command(&codex);
    probe.args(codex_current_policy_args(std::slice::from_ref(&dir), &dir));
    probe.args(["--", "/bin/sh", "-c", ":"]);
    smoke(probe, "`codex sandbox` (current release)")
}

/// A permission profile of our own (the built-in `:workspace` makes all of `/tmp` writable,
/// where the cells live): read everything, write only the given roots. Network stays off
/// (Codex's seccomp filter). `codex sandbox` requires `-P` once `-c` overrides are given.
fn codex_current_policy_args(writable: &[PathBuf], cwd: &Path) -> Vec<OsString> {
    let mut table = vec![format!("{}=\"read\"", toml_string("/".as_ref()))];
    table.extend(
        writable
            .iter()
            .map(|p| format!("{}=\"write\"", toml_string(p.as_os_str()))),
    );
    let mut args: Vec<OsString> = [
        "sandbox".to_owned(),
        "-P".to_owned(),
        "uvfix".to_owned(),
        "-c".to_owned(),
        format!("permissions.uvfix.filesystem={{{}}}", table.join(",")),
        "-C".to_owned(),
    ]
    .map(OsString::from)
    .to_vec();
    args.push(cwd.as_os_str().to_owned());
    args
}

fn codex_current(layout: &Layout, inv: &Invocation) -> Command {
    let codex = locate_codex_current().unwrap_or_else(|_| PathBuf::from("codex"));
    let mut cmd = script_command(&codex);
    cmd.env_clear().envs(sandbox_env(inv)).current_dir(&inv.cwd);
    cmd.args(codex_current_policy_args(
        &[layout.workspace.clone(), layout.tmp.clone()],
        &inv.cwd,
    ));
    cmd.arg("--").arg(&inv.program).args(&inv.args);
    cmd
}

// ---------------------------------------------------------------------------------------------
// sandbox-runtime (srt)

const SRT_INSTALL: &str = "npm install --prefix target/uvfix/npm @anthropic-ai/sandbox-runtime";

/// `sandbox-runtime`: Anthropic's `srt` with a settings file per layout.
pub(crate) struct SandboxRuntime;

impl Policy for SandboxRuntime {
    fn name(&self) -> &str {
        "sandbox-runtime"
    }

    fn denial(&self) -> Option<Denial> {
        Some(Denial::Erofs)
    }

    fn availability(&self) -> Availability {
        srt_availability()
    }

    fn command(&self, layout: &Layout, _helper: &Path, inv: &Invocation) -> Command {
        srt(layout, inv)
    }

    /// srt creates its proxy bridges as unix sockets under TMPDIR, and socket paths are
    /// limited to 108 bytes: a deep TMPDIR fails like this, every time.
    fn no_report_hint(&self, layout: &Layout, stderr: &str) -> Option<String> {
        stderr.contains("Failed to create bridge sockets").then(|| {
            format!(
                " (srt puts unix sockets under TMPDIR = {}; socket paths are limited to 108 \
                 bytes, so use a shorter TMPDIR)",
                layout.tmp.display()
            )
        })
    }
}

fn srt_availability() -> Availability {
    if !cfg!(any(target_os = "linux", target_os = "macos")) {
        return Availability::Unavailable("srt supports Linux and macOS only".into());
    }
    let srt = match locate("UVFIX_SRT", "srt") {
        Ok(srt) => srt,
        Err(e) => return Availability::Unavailable(format!("{e}: {SRT_INSTALL}")),
    };
    if cfg!(target_os = "linux") {
        for (tool, package) in [
            ("bwrap", "bubblewrap"),
            ("rg", "ripgrep"),
            ("socat", "socat"),
        ] {
            if find_in_path(tool).is_none() {
                return Availability::Unavailable(format!(
                    "srt needs {tool} on Linux: apt-get install {package}"
                ));
            }
        }
    }
    // A private probe directory: with HOME = the shared temp dir, srt's own mounts (it protects
    // `$HOME/.claude/…`) tripped over another user's `/tmp/.claude` (seen as a non-root runner
    // after a root run: "Can't create file at /tmp/.claude/commands: Permission denied").
    let probe_dir = match tempfile::Builder::new()
        .prefix("uvfix-srt-probe-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return Availability::Unavailable(format!("creating a probe directory: {e}")),
    };
    let dir = probe_dir.path().to_path_buf();
    let probe_layout = Layout {
        home: dir.clone(),
        cache: dir.join("cache"),
        workspace: dir.clone(),
        tmp: dir,
    };
    let settings = match write_srt_settings(&probe_layout) {
        Ok(settings) => settings,
        Err(e) => return Availability::Unavailable(format!("writing srt settings: {e}")),
    };
    smoke(srt_probe(&srt, &settings, probe_dir.path()), "`srt`")
}

/// `srt` running `/bin/sh -c :` with its own `TMPDIR`: srt listens on
/// `$TMPDIR/srt-mux-<pid>-0.sock` and removes a stale one first, which fails when another user's
/// srt left it in the shared `/tmp` (pids wrap at 32768 in a long CI run). Seen as the runner
/// after root's test run: "listen EADDRINUSE: address already in use /tmp/srt-mux-21060-0.sock".
fn srt_probe(srt: &Path, settings: &Path, tmp: &Path) -> Command {
    let mut probe = script_command(srt);
    probe
        .env("TMPDIR", tmp)
        .arg("--settings")
        .arg(settings)
        .args(["--", "/bin/sh", "-c", ":"]);
    probe
}

/// srt points `TMPDIR` of the sandboxed command at this directory. Claude Code creates it and
/// lets the sandbox write there, so we do the same; without it every tool that needs a
/// temporary file inside the sandbox fails with ENOENT, which is not what users see.
pub const SRT_TMPDIR: &str = "/tmp/claude";

/// Create [`SRT_TMPDIR`] shared like `/tmp` (sticky, world-writable), as Claude Code does.
pub(crate) fn ensure_srt_tmpdir() -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(SRT_TMPDIR);
    if !dir.is_dir() {
        fs_err::create_dir_all(dir)?;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))?;
    }
    Ok(())
}

/// The settings of one layout: written on the host, read by srt before it builds the sandbox.
fn srt_settings_json(layout: &Layout) -> String {
    let j = |p: &Path| json_string(p.as_os_str());
    format!(
        "{{\"network\":{{\"allowedDomains\":[],\"deniedDomains\":[]}},\
          \"filesystem\":{{\"denyRead\":[],\"allowWrite\":[{},{},{}],\"denyWrite\":[{}]}}}}\n",
        j(&layout.workspace),
        j(&layout.tmp),
        j(Path::new(SRT_TMPDIR)),
        j(&layout.cache)
    )
}

fn write_srt_settings(layout: &Layout) -> std::io::Result<PathBuf> {
    ensure_srt_tmpdir()?;
    let json = srt_settings_json(layout);
    let mut hasher = DefaultHasher::new();
    json.hash(&mut hasher);
    let name = format!("uvfix-srt-settings-{:016x}.json", hasher.finish());
    // Beside TMPDIR, i.e. in the cell's own root: deleted with the layout, and not writable from
    // inside (only workspace and tmp are), so a sandboxed command cannot widen the next run's
    // rules. Fallback when that parent is not ours to write (TMPDIR = /tmp): a per-uid dir.
    let dir = match layout.tmp.parent() {
        Some(parent) if parent != Path::new("/") && parent != std::env::temp_dir() => {
            parent.to_path_buf()
        }
        _ => {
            let uid = rustix::process::geteuid().as_raw();
            let dir = std::env::temp_dir().join(format!("uvfix-srt-{uid}"));
            fs_err::create_dir_all(&dir)?;
            dir
        }
    };
    let path = dir.join(&name);
    if !path.exists() {
        // Unique temp name then rename: concurrent runs never read a half-written file.
        let partial = dir.join(format!(".{name}.{}", std::process::id()));
        fs_err::write(&partial, json)?;
        fs_err::rename(&partial, &path)?;
    }
    Ok(path)
}

fn srt(layout: &Layout, inv: &Invocation) -> Command {
    let mut cmd = script_command(&located("UVFIX_SRT", "srt"));
    cmd.env_clear().envs(sandbox_env(inv)).current_dir(&inv.cwd);
    match write_srt_settings(layout) {
        Ok(settings) => cmd.arg("--settings").arg(settings),
        Err(e) => {
            // Cannot fail here; srt refuses the missing file loudly and we say why on stderr.
            eprintln!("uvfix-sandbox: cannot write the srt settings file: {e}");
            cmd.arg("--settings")
                .arg("/nonexistent/uvfix-srt-settings.json")
        }
    };
    cmd.arg("--").arg(&inv.program).args(&inv.args);
    cmd
}

// ---------------------------------------------------------------------------------------------
// seatbelt

const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// `seatbelt`: macOS `sandbox-exec` with [`seatbelt_profile`].
pub(crate) struct Seatbelt;

impl Policy for Seatbelt {
    fn name(&self) -> &str {
        "seatbelt"
    }

    fn denial(&self) -> Option<Denial> {
        Some(Denial::Eperm)
    }

    fn availability(&self) -> Availability {
        seatbelt_availability()
    }

    fn command(&self, layout: &Layout, _helper: &Path, inv: &Invocation) -> Command {
        seatbelt(layout, inv)
    }
}

fn seatbelt_availability() -> Availability {
    if !cfg!(target_os = "macos") {
        return Availability::Unavailable(format!(
            "Seatbelt (sandbox-exec) exists only on macOS, this is {}",
            std::env::consts::OS
        ));
    }
    if !Path::new(SANDBOX_EXEC).exists() {
        return Availability::Unavailable(format!("{SANDBOX_EXEC} not found"));
    }
    Availability::Available
}

/// The Seatbelt profile: everything allowed except writing below the home (the cache and
/// `~/.cache`, where uv would create a missing cache, with it) and the network.
///
/// The home, not only the cache: Codex and Claude Code on macOS let a command write to its
/// workspace and temp dirs only, and with the cache absent the canary probes `~/.cache`, which
/// a cache-only rule would leave writable (a "denying" sandbox whose canary succeeds).
pub fn seatbelt_profile(home: &Path) -> String {
    // Seatbelt matches resolved paths (/var → /private/var on macOS).
    let home = fs_err::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
    let quoted = home
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "(version 1)\n(allow default)\n(deny file-write* (subpath \"{quoted}\"))\n(deny network*)\n"
    )
}

fn seatbelt(layout: &Layout, inv: &Invocation) -> Command {
    let mut cmd = base_command(SANDBOX_EXEC, inv);
    cmd.arg("-p")
        .arg(seatbelt_profile(&layout.home))
        .arg(&inv.program)
        .args(&inv.args);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_settings_are_json_with_the_layout() {
        let layout = Layout {
            home: "/h".into(),
            cache: "/h/.cache/uv".into(),
            workspace: "/w".into(),
            tmp: "/t".into(),
        };
        let json = srt_settings_json(&layout);
        assert!(
            json.contains(r#""allowWrite":["/w","/t","/tmp/claude"]"#),
            "{json}"
        );
        assert!(json.contains(r#""denyWrite":["/h/.cache/uv"]"#), "{json}");
        assert!(json.contains(r#""allowedDomains":[]"#), "{json}");
    }

    #[test]
    fn the_srt_probe_keeps_its_sockets_out_of_the_shared_tmp() {
        let probe = srt_probe(Path::new("/opt/srt"), Path::new("/s.json"), Path::new("/p"));
        let tmpdir = probe
            .get_envs()
            .find(|(key, _)| *key == "TMPDIR")
            .and_then(|(_, value)| value);
        assert_eq!(tmpdir, Some(Path::new("/p").as_os_str()));
    }

    #[test]
    fn codex_args_quote_roots_as_toml() {
        let args = codex_policy_args(&["/w \"x\"".into()]);
        let last = args.last().unwrap().to_str().unwrap();
        let (key, value) = last.split_once('=').unwrap();
        assert_eq!(key, "sandbox_workspace_write.writable_roots");
        // codex parses the value as TOML: it must come back as the path, quotes and all.
        let parsed: toml::Table = format!("v = {value}").parse().unwrap();
        assert_eq!(parsed["v"][0].as_str(), Some("/w \"x\""));
    }

    #[test]
    fn codex_current_profile_is_toml() {
        let args = codex_current_policy_args(&["/w \"x\"".into()], Path::new("/w"));
        let value = args[4]
            .to_str()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        let parsed: toml::Table = format!("v = {value}").parse().unwrap();
        assert_eq!(parsed["v"]["/"].as_str(), Some("read"));
        assert_eq!(parsed["v"]["/w \"x\""].as_str(), Some("write"));
    }

    #[test]
    fn seatbelt_profile_denies_writes_below_home() {
        let profile = seatbelt_profile(Path::new("/nonexistent/home"));
        assert!(profile.contains("(deny file-write* (subpath \"/nonexistent/home\"))"));
        assert!(profile.contains("(deny network*)"));
    }
}
