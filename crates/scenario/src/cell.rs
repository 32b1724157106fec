//! One matrix cell: (uv, sandbox, scenario, cache state) → [`CellResult`].
//!
//! Order of work, and why:
//! 1. availability and state applicability → `Skip(reason)` (never a silent pass);
//! 2. a fresh world-traversable temp root with `home/`, `workspace/`, `tmp/`, `wheels/`;
//! 3. fixture wheels + workspace files; warm steps run unsandboxed with the *same* uv and a
//!    writable cache, exactly as a user would have warmed it;
//! 4. the cache state is applied, then `Sandbox::prepare`;
//! 5. the canary must be denied with the sandbox's errno, and `uv --version` must run inside
//!    the sandbox: without both, a failing uv would "pass" as an expected failure vacuously;
//! 6. digest the cache, run the sandboxed steps (timeout, process group killed on expiry),
//!    digest again, judge with [`crate::expect`].
//!
//! Cache-absent: in a denying sandbox the cache cannot be created at all, so the rule is the
//! same as for every other state — the "after" digest must equal the "before" one (absent →
//! absent). Unsandboxed (a writable cache) uv creates its cache as usual; there, and for
//! `Sandbox::None` in general, the diff is recorded but does not decide the outcome.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use uvfix_sandbox::{Availability, Denial, Layout, Sandbox};

use crate::build::Build;
use crate::digest::{TreeDiff, TreeDigest};
use crate::expect::{self, Expect, Observed, Outcome};
use crate::scenario::{Ctx, ScenarioId, Step, WarmStep};
use crate::state::CacheState;

/// A uv build to test: what it is and its binaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UvUnderTest {
    pub build: Build,
    pub uv: PathBuf,
    pub uvx: PathBuf,
}

/// Points at an official uv binary (its `uvx` must sit next to it); `ci/fetch-official-uv.sh`
/// prints such a path, and `.ci/run` and the nextest setup script export it.
pub const OFFICIAL_UV_ENV: &str = "UVFIX_UV";

impl UvUnderTest {
    /// `uvx` is taken from the same directory as `uv`.
    pub fn new(build: Build, uv: impl Into<PathBuf>) -> Self {
        let uv = uv.into();
        let uvx = uv.with_file_name("uvx");
        Self { build, uv, uvx }
    }

    /// The official binary named by `$UVFIX_UV`: `Ok(None)` when the variable is unset,
    /// `Err(reason)` when it names something that is not a runnable uv. Its version (the
    /// build's identity) is what the binary says it is.
    pub fn official() -> Result<Option<Self>, String> {
        let Some(uv) = std::env::var_os(OFFICIAL_UV_ENV).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let uv = PathBuf::from(uv);
        let fail = |e: String| {
            format!(
                "{OFFICIAL_UV_ENV}={}: {e} (get one with `ci/fetch-official-uv.sh 0.12.5`)",
                uv.display()
            )
        };
        let probe = Self::new(Build::Pristine, &uv);
        probe.check().map_err(fail)?;
        let mut version = Command::new(&uv);
        version.arg("--version");
        let out =
            run_output(version, Duration::from_secs(30)).map_err(|e| fail(format!("{e:#}")))?;
        // `uv 0.12.5` or `uv 0.12.5 (abc123 2026-01-01)`.
        let text = out.stdout_text();
        let version = text
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| fail(format!("`uv --version` printed {:?}", text.trim())))?;
        Ok(Some(Self::new(Build::Official(version), uv)))
    }

    /// Both binaries exist and are executable by everyone (foreign-owner runs them as 65534).
    pub fn check(&self) -> Result<(), String> {
        for bin in [&self.uv, &self.uvx] {
            let meta = fs_err::metadata(bin).map_err(|e| e.to_string())?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(format!("{} is not an executable file", bin.display()));
            }
        }
        Ok(())
    }
}

/// Knobs with sensible defaults; [`run_cell`] uses [`CellOptions::default`].
#[derive(Debug, Clone)]
pub struct CellOptions {
    /// Per command (each warm and sandboxed step separately).
    pub timeout: Duration,
    /// Parent of the cell's temp root; `std::env::temp_dir()` when `None`.
    pub temp_parent: Option<PathBuf>,
    /// Keep the temp root for inspection (also with env `UVFIX_KEEP_CELLS=1`).
    pub keep_root: bool,
    /// Interpreter for uv; [`crate::python::find_python`] when `None`.
    pub python: Option<PathBuf>,
    /// Bytes of stdout/stderr kept in the result.
    pub output_limit: usize,
}

impl Default for CellOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            temp_parent: None,
            keep_root: std::env::var_os("UVFIX_KEEP_CELLS").is_some_and(|v| v != "0"),
            python: None,
            output_limit: 16 * 1024,
        }
    }
}

/// Everything a report needs about one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellResult {
    /// The build, under the report's historical key (serialized as its name, `patched`, …).
    pub uv_label: Build,
    pub sandbox: Sandbox,
    pub scenario: ScenarioId,
    pub state: CacheState,
    pub expected: Expect,
    /// Why that expectation (the matching row of [`crate::expect::RULES`]).
    pub expected_why: String,
    pub outcome: Outcome,
    /// Of the first sandboxed step that failed, else of the last one; `None` if not run or killed.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The denial the canary saw (`EROFS`, …); `None` unsandboxed or when not reached.
    pub canary: Option<Denial>,
    pub cache_diff: Option<TreeDiff>,
    pub duration_ms: u64,
    /// The sandboxed command line(s).
    pub command: String,
    /// The temp root, when kept.
    pub root: Option<PathBuf>,
}

/// Run one cell with default options.
pub fn run_cell(
    uv: &UvUnderTest,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
) -> CellResult {
    run_cell_with(
        uv,
        sandbox,
        scenario,
        state,
        helper,
        &CellOptions::default(),
    )
}

pub fn run_cell_with(
    uv: &UvUnderTest,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
) -> CellResult {
    let start = Instant::now();
    let rule = expect::rule_for(&uv.build, sandbox, scenario, state);
    let mut result = CellResult {
        uv_label: uv.build.clone(),
        sandbox,
        scenario,
        state,
        expected: rule.expect,
        expected_why: rule.why.to_owned(),
        outcome: Outcome::Skip("not run".into()),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        canary: None,
        cache_diff: None,
        duration_ms: 0,
        command: scenario.spec().command_display(),
        root: None,
    };
    let skip = match sandbox.availability() {
        Availability::Unavailable(reason) => Some(reason),
        Availability::Available => state.skip_reason(sandbox),
    };
    result.outcome = match skip {
        Some(reason) => Outcome::Skip(reason),
        None => match run_inner(&mut result, uv, sandbox, scenario, state, helper, opts) {
            Ok(outcome) => outcome,
            // Setup trouble is the fixture's failure, reported in words, never a panic.
            Err(e) => Outcome::Fail(format!("{e:#}")),
        },
    };
    result.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    result
}

/// The cell's directories, world-traversable so that foreign-owner's uid can walk them.
///
/// Besides the [`Layout`] it has, inside `home` (the one tree every sandbox shows, at least
/// read-only: ro-home puts a private tmpfs over the rest of `/tmp`, docker mounts only the
/// layout):
/// - `home/wheels/`: the find-links directory;
/// - `home/.local/bin/`: the uv and uvx under test, staged where the official installer puts
///   them, so that `uvx` finds its sibling `uv` and uid 65534 can execute both.
#[derive(Debug, Clone)]
pub struct CellDirs {
    pub layout: Layout,
    pub wheels: PathBuf,
    pub bin: PathBuf,
}

pub fn make_layout(root: &Path) -> std::io::Result<CellDirs> {
    let layout = Layout {
        home: root.join("home"),
        cache: root.join("home/.cache/uv"),
        workspace: root.join("workspace"),
        tmp: root.join("tmp"),
    };
    let wheels = layout.home.join("wheels");
    let bin = layout.home.join(".local/bin");
    let local = layout.home.join(".local");
    for dir in [
        root,
        &layout.home,
        &layout.workspace,
        &layout.tmp,
        &wheels,
        &local,
        &bin,
    ] {
        fs_err::create_dir_all(dir)?;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(CellDirs {
        layout,
        wheels,
        bin,
    })
}

/// Put `src` at `dest` (mode 0755): a hard link when that is free and already executable by
/// everyone (uv is ~60 MB and the matrix has hundreds of cells), else a copy.
pub fn stage_binary(src: &Path, dest: &Path) -> std::io::Result<()> {
    let src_mode = fs_err::metadata(src)?.permissions().mode();
    if src_mode & 0o005 == 0o005 && fs_err::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    fs_err::copy(src, dest)?;
    fs_err::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
}

fn run_inner(
    result: &mut CellResult,
    uv: &UvUnderTest,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
) -> anyhow::Result<Outcome> {
    uv.check().map_err(anyhow::Error::msg)?;
    let python = match &opts.python {
        Some(p) => p.clone(),
        None => crate::python::find_python()?,
    };
    let parent = opts.temp_parent.clone().unwrap_or_else(std::env::temp_dir);
    // Short on purpose: srt puts unix sockets under the cell's TMPDIR, and a socket path may
    // not exceed 108 bytes (with the whole cell name in it, `official-0.12.5` cells broke).
    let tmp = tempfile::Builder::new()
        .prefix(&format!("uvfix-{}-", scenario.name()))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a cell root under {}", parent.display()))?;
    let root = tmp.path().to_owned();
    // A kept root is disarmed before the run, so even a cell that dies leaves its files.
    let tmp = if opts.keep_root {
        result.root = Some(root.clone());
        let _kept = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    let outcome = run_in_root(
        result, uv, sandbox, scenario, state, helper, opts, &python, &root,
    );
    // Foreign-owner chowns parts of the root; we are root, so removal still works.
    if let Some(tmp) = tmp
        && let Err(e) = tmp.close()
    {
        eprintln!("uvfix: could not remove {}: {e}", root.display());
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
fn run_in_root(
    result: &mut CellResult,
    uv: &UvUnderTest,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
    python: &Path,
    root: &Path,
) -> anyhow::Result<Outcome> {
    let spec = scenario.spec();
    let CellDirs {
        layout,
        wheels,
        bin,
    } = make_layout(root).context("creating the cell layout")?;
    let (staged_uv, staged_uvx) = (bin.join("uv"), bin.join("uvx"));
    stage_binary(&uv.uv, &staged_uv).context("staging uv")?;
    stage_binary(&uv.uvx, &staged_uvx).context("staging uvx")?;
    crate::wheel::build_fixture_wheels(&wheels)?;
    spec.setup_workspace(&layout.workspace, &wheels)
        .context("writing the workspace")?;
    let ctx = Ctx {
        layout: &layout,
        wheels: &wheels,
        uv: &staged_uv,
        uvx: &staged_uvx,
        python,
    };
    let outcome = run_staged(result, sandbox, state, helper, opts, &spec, &ctx);
    // Foreign-owner as non-root strips write bits; give them back so the root can be removed.
    if let Err(e) = sandbox.release(&layout) {
        eprintln!("uvfix: {e}");
    }
    outcome
}

fn run_staged(
    result: &mut CellResult,
    sandbox: Sandbox,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
    spec: &crate::scenario::Scenario,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Outcome> {
    let layout = ctx.layout;

    // Warm, unsandboxed, writable cache.
    for warm in &spec.warm {
        match warm {
            WarmStep::Run(step) => {
                let out = run_plain(step, ctx, opts.timeout)?;
                if out.timed_out || out.exit_code != Some(0) {
                    bail!(
                        "warm step `{}` failed ({}): {}",
                        step.display(),
                        out.status_text(),
                        expect::first_error_line(&out.stderr_text())
                    );
                }
            }
            WarmStep::RemoveVenv => {
                let venv = layout.workspace.join(".venv");
                if venv.exists() {
                    fs_err::remove_dir_all(&venv)?;
                }
            }
        }
    }

    state.apply(&layout.cache)?;
    sandbox.prepare(layout)?;
    if state == CacheState::CacheAbsent && layout.cache.exists() {
        // foreign-owner's prepare creates an empty cache so that its canary has a target;
        // this state is about no cache at all, so take it away again (only if still empty).
        fs_err::remove_dir(&layout.cache).context("removing the cache prepare() created")?;
    }

    if let Some(expected) = sandbox.denial() {
        // The canary writes into the cache; with the cache absent it writes into its nearest
        // existing ancestor (`~/.cache`), which is where uv would have to create it.
        let target = nearest_existing(&layout.cache);
        match sandbox.probe_write(layout, helper, &target) {
            Ok(seen) if seen == expected => result.canary = Some(seen),
            Ok(seen) => {
                result.canary = Some(seen);
                return Ok(Outcome::Fail(format!(
                    "canary denied with {seen} but {sandbox} expects {expected}"
                )));
            }
            Err(e) => return Ok(Outcome::Fail(format!("canary: {e}"))),
        }
    }

    // Prove uv itself starts inside the sandbox (exec permission, libraries, mounts), so that
    // a pristine failure is uv's and not the fixture's.
    let version = Step {
        program: crate::scenario::Program::Uv,
        args: vec![crate::scenario::Arg::Lit("--version".into())],
    };
    let out = run_output(
        sandbox.command(layout, helper, &version.invocation(ctx)),
        opts.timeout,
    )?;
    if out.exit_code != Some(0) || !out.stdout_text().starts_with("uv ") {
        return Ok(Outcome::Fail(format!(
            "`uv --version` does not run inside {} ({}): {}",
            sandbox.name(),
            out.status_text(),
            expect::first_error_line(&out.stderr_text())
        )));
    }

    let before = TreeDigest::of(&layout.cache)?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut last_stdout = String::new();
    let mut exit_code = None;
    let mut timed_out = false;
    for step in &spec.sandboxed {
        let inv = step.invocation(ctx);
        let out = run_output(sandbox.command(layout, helper, &inv), opts.timeout)?;
        last_stdout = out.stdout_text();
        if spec.sandboxed.len() > 1 {
            stderr.push_str(&format!("$ {}\n", step.display()));
        }
        stdout.push_str(&last_stdout);
        stderr.push_str(&out.stderr_text());
        if let Some(sig) = out.signal {
            stderr.push_str(&format!("[killed by signal {sig}]\n"));
        }
        exit_code = out.exit_code;
        timed_out = out.timed_out;
        if timed_out || exit_code != Some(0) {
            break;
        }
    }
    let after = TreeDigest::of(&layout.cache)?;
    let diff = before.diff(&after);

    let observed = Observed {
        exit_code,
        timed_out,
        stdout_ok: exit_code == Some(0) && spec.stdout_ok(&last_stdout),
        stderr: stderr.clone(),
        // Only a denying sandbox promises an unchanged cache.
        cache_change: (sandbox != Sandbox::None && !diff.is_empty()).then(|| diff.summary()),
    };
    result.exit_code = exit_code;
    result.stdout = truncate(&stdout, opts.output_limit);
    result.stderr = truncate(&stderr, opts.output_limit);
    result.cache_diff = Some(diff);
    Ok(expect::judge(result.expected, &observed))
}

fn nearest_existing(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_owned()
}

/// Output of one command.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl RunOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn status_text(&self) -> String {
        match (self.timed_out, self.exit_code, self.signal) {
            (true, _, _) => "timed out".into(),
            (_, Some(c), _) => format!("exit {c}"),
            (_, None, Some(s)) => format!("signal {s}"),
            _ => "unknown status".into(),
        }
    }
}

/// Run a step without a sandbox (warming): complete environment, workspace as cwd.
fn run_plain(step: &Step, ctx: &Ctx<'_>, timeout: Duration) -> anyhow::Result<RunOutput> {
    let inv = step.invocation(ctx);
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .env_clear()
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&inv.cwd);
    run_output(cmd, timeout)
}

/// Spawn `cmd` in its own process group, collect stdout/stderr, kill the group on timeout.
pub fn run_output(mut cmd: Command, timeout: Duration) -> anyhow::Result<RunOutput> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Our own group, so that a timeout kills uv's children (python, bwrap's child) too.
        .process_group(0);
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd.spawn().with_context(|| format!("spawning {program}"))?;
    let (tx, rx) = mpsc::channel();
    for (idx, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        if let Some(mut pipe) = pipe {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send((idx, buf));
            });
        }
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = RunOutput {
        exit_code: status.code(),
        signal: status.signal(),
        timed_out,
        ..RunOutput::default()
    };
    // A grandchild that escaped the group could hold a pipe open forever: bound the wait.
    let grace = Instant::now() + Duration::from_secs(5);
    while let Ok((idx, buf)) = rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        if idx == 0 {
            out.stdout = buf;
        } else {
            out.stderr = buf;
        }
    }
    Ok(out)
}

/// Keep the head and the tail (the error is usually at the end) of long output.
pub fn truncate(s: &str, limit: usize) -> String {
    if s.len() <= limit {
        return s.to_owned();
    }
    let head_len = limit / 4;
    let tail_len = limit - head_len;
    let head_end = (0..=head_len)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    let tail_start = (s.len() - tail_len..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    format!(
        "{}\n… [{} bytes cut] …\n{}",
        &s[..head_end],
        tail_start - head_end,
        &s[tail_start..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use assert_fs::prelude::*;
    use predicates::prelude::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let long = "é".repeat(100);
        let t = truncate(&long, 40);
        assert!(t.contains("bytes cut"));
        assert!(t.len() < 80);
        assert!(t.ends_with('é'));
    }

    #[test]
    fn layout_is_world_traversable() {
        let dir = assert_fs::TempDir::new().unwrap();
        let root = dir.child("root");
        let CellDirs {
            layout,
            wheels,
            bin,
        } = make_layout(root.path()).unwrap();
        for d in [
            root.path(),
            &layout.home,
            &layout.workspace,
            &layout.tmp,
            &wheels,
            &bin,
        ] {
            let mode = fs_err::metadata(d).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{}", d.display());
        }
        assert_eq!(layout.cache, layout.home.join(".cache/uv"));
        root.child("home/.cache/uv")
            .assert(predicate::path::missing());
    }

    #[test]
    fn nearest_existing_ancestor() {
        let dir = assert_fs::TempDir::new().unwrap();
        assert_eq!(nearest_existing(&dir.path().join("a/b/c")), dir.path());
    }

    #[test]
    fn run_output_collects_and_times_out() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_output(cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");

        // A child that would outlive the timeout, with a grandchild holding the pipes.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        let start = Instant::now();
        let out = run_output(cmd, Duration::from_millis(300)).unwrap();
        assert!(out.timed_out);
        assert_eq!(out.status_text(), "timed out");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn official_uv_reason_is_actionable() {
        let bad = UvUnderTest::new(Build::Pristine, "/nonexistent/uv");
        assert_eq!(bad.uvx, Path::new("/nonexistent/uvx"));
        assert!(bad.check().is_err());
    }
}
