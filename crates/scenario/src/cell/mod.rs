//! One matrix cell: (uv, sandbox, scenario, cache state) → [`CellResult`].
//!
//! Order of work, and why:
//! 1. availability and state applicability → `Skip(reason)` (never a silent pass); in a
//!    writable cache, pristine's cell of the same key as the write-set reference ([`writes`]:
//!    the run's record, made once, before this cell claims its slot);
//! 2. a fresh world-traversable temp root with `home/`, `workspace/`, `tmp/`, `wheels/`
//!    ([`layout`]), fixture wheels, the workspace files and the staged binaries; with a
//!    [`CellOptions::store`], the slot of (uv, scenario, state) instead ([`slot`]): warmed
//!    there by the first cell of that key, a checked copy of that warm tree for the others;
//! 3. the steps ([`steps`]): warm unsandboxed with the *same* uv and a writable cache, exactly
//!    as a user would have; damage the cache as the state says; run the scenario sandboxed
//!    with the cache digested before and after, its first command behind the canary (one
//!    sandbox start proves the denial with the sandbox's errno, then execs uv, and only then);
//!    if uv stopped with an error, prove `uv --version` runs inside (so the
//!    failure is uv's, not the fixture's); judge with [`crate::expect`].
//!    A state with a foreign piece first proves, as uv's uid, that the piece is closed to it
//!    ([`crate::state`]); a writable cell that ran to success must have written what pristine
//!    wrote ([`crate::writeset`]); an S1 cell whose uv went ahead races `uv cache clean` against
//!    a held `uv run` ([`lock`]). One FAIL names every guard that failed.
//!
//! Cache-absent: in a denying sandbox the cache cannot be created at all, so the rule is the
//! same as for every other state — the "after" digest must equal the "before" one (absent →
//! absent). Unsandboxed (a writable cache) uv creates its cache as usual; there, and for
//! `Sandbox::None` in general, the diff is not required to be empty: what was written is
//! compared with what pristine writes instead.

mod layout;
mod lock;
mod slot;
mod steps;
mod usage;
mod writes;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use uvfix_sandbox::{Availability, Denial, Sandbox};

pub use self::layout::{CellDirs, make_layout, stage_binary};
pub use self::lock::LockReport;
pub use self::usage::store_peak;
use crate::build::Build;
use crate::digest::TreeDiff;
use crate::expect::{self, Expect, Outcome};
use crate::scenario::ScenarioId;
use crate::state::CacheState;
use crate::writeset::{WriteCheck, WriteSet};

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
        let out = uvfix_process::run(&mut version, Some(Duration::from_secs(30)))
            .map_err(|e| fail(e.to_string()))?;
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
    /// Warm once, copy per cell (see [`slot`]): the directory that holds every key's slot
    /// and warm snapshot, for one run. `None`: every cell warms its own cache in a fresh
    /// temp root. Default: `$UVFIX_CELL_STORE` (set by the nextest setup script).
    pub store: Option<PathBuf>,
    /// The build whose writes into a writable cache every other build's must equal
    /// (pristine; see [`crate::writeset`] and `writes`). `None`: writable cells say that
    /// their writes were not compared.
    pub reference: Option<UvUnderTest>,
    /// With a [`store`](Self::store): this is the last cell of its key in the run, so its
    /// slot and warm snapshot are removed after it instead of kept for the next cell.
    pub release_slot: bool,
    /// With a [`store`](Self::store): the reference build's writable cells, the write-set
    /// records (`writes::recorded`), run in a root of their own in the store, removed after
    /// them, instead of in the reference build's slot. Set where slots are released after
    /// their key's last cell ([`crate::pool`]): counting those cells would need to know which
    /// cell ends up making a record, which only the run's timing decides.
    pub reference_apart: bool,
}

/// Names the directory of warm snapshots shared by a run's cells ([`CellOptions::store`]).
pub const CELL_STORE_ENV: &str = "UVFIX_CELL_STORE";

impl Default for CellOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            temp_parent: None,
            keep_root: std::env::var_os("UVFIX_KEEP_CELLS").is_some_and(|v| v != "0"),
            python: None,
            output_limit: 16 * 1024,
            store: std::env::var_os(CELL_STORE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            reference: None,
            release_slot: false,
            reference_apart: false,
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
    /// Where the time went, for the cost per cell.
    #[serde(default)]
    pub timing: Timing,
    /// The sandboxed command line(s).
    pub command: String,
    /// The temp root, when kept.
    pub root: Option<PathBuf>,
    /// A foreign state's proof, as uv's uid: what was denied to it and what was open.
    #[serde(default)]
    pub state_proof: Option<String>,
    /// What the scenario wrote into a writable cache (sandbox `none`), by shape.
    #[serde(default)]
    pub write_set: Option<WriteSet>,
    /// Those writes compared with pristine's (`None`: pristine's own cell, or a denying
    /// sandbox, where the cache must stay unchanged anyway).
    #[serde(default)]
    pub write_check: Option<WriteCheck>,
    /// The lock probe (S1 cells whose uv went ahead): did uv hold the cache lock, and did
    /// `uv cache clean` wait for it.
    #[serde(default)]
    pub lock: Option<LockReport>,
}

/// Parts of [`CellResult::duration_ms`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// The warm steps; `None` when the cell got a copy of an earlier cell's warm tree.
    pub warm_ms: Option<u64>,
    /// uv's own run: the sandboxed scenario steps (not the canary, not `uv --version`).
    pub uv_ms: u64,
}

/// Milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

/// Why the cell cannot run here: the sandbox is unavailable, or the state means nothing in it.
fn skip_reason(sandbox: Sandbox, state: CacheState) -> Option<String> {
    match sandbox.availability() {
        Availability::Unavailable(reason) => Some(reason),
        Availability::Available => state.skip_reason(sandbox),
    }
}

pub fn run_cell_with(
    uv: &UvUnderTest,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
) -> CellResult {
    let mut reference = None;
    if skip_reason(sandbox, state).is_none() {
        // The reference build's own writable cell: run once per run, whoever needs it first.
        if sandbox == Sandbox::None && opts.reference.as_ref() == Some(uv) {
            match writes::recorded(uv, scenario, state, helper, opts) {
                Ok(result) => return result,
                Err(e) => eprintln!("uvfix: the run's record of {}: {e:#}", uv.build),
            }
        }
        // Before this cell claims its slot: see `writes`.
        reference = writes::reference(uv, sandbox, scenario, state, helper, opts);
    }
    run_cell_inner(uv, sandbox, scenario, state, helper, opts, reference)
}

/// One cell, with its write-set reference already at hand.
fn run_cell_inner(
    uv: &UvUnderTest,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
    reference: Option<Result<writes::Reference, String>>,
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
        timing: Timing::default(),
        command: scenario.spec().command_display(),
        root: None,
        state_proof: None,
        write_set: None,
        write_check: None,
        lock: None,
    };
    result.outcome = match skip_reason(sandbox, state) {
        Some(reason) => Outcome::Skip(reason),
        // Setup trouble is the fixture's failure, reported in words, never a panic.
        None => in_temp_root(&mut result, uv, helper, opts, reference)
            .unwrap_or_else(|e| Outcome::Fail(format!("{e:#}"))),
    };
    result.duration_ms = millis(start.elapsed());
    result
}

/// Run the cell's steps in a fresh temp root, removed afterwards unless it is kept.
fn in_temp_root(
    result: &mut CellResult,
    uv: &UvUnderTest,
    helper: &Path,
    opts: &CellOptions,
    reference: Option<Result<writes::Reference, String>>,
) -> anyhow::Result<Outcome> {
    uv.check().map_err(anyhow::Error::msg)?;
    let python = match &opts.python {
        Some(p) => p.clone(),
        None => crate::python::find_python()?,
    };
    if let Some(store) = &opts.store {
        return in_slot(result, uv, helper, opts, python, store, reference);
    }
    let parent = opts.temp_parent.clone().unwrap_or_else(std::env::temp_dir);
    // Short on purpose: srt puts unix sockets under the cell's TMPDIR, and a socket path may
    // not exceed 108 bytes (with the whole cell name in it, `official-0.12.5` cells broke).
    let tmp = tempfile::Builder::new()
        .prefix(&format!("uvfix-{}-", result.scenario.name()))
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
    let outcome = in_root(result, uv, helper, opts, python, &root, reference);
    // Foreign-owner chowns parts of the root; we are root, so removal still works.
    if let Some(tmp) = tmp
        && let Err(e) = tmp.close()
    {
        eprintln!("uvfix: could not remove {}: {e}", root.display());
    }
    outcome
}

/// Lay out `root`, stage the binaries and the wheels: everything before the warm.
fn lay_out(uv: &UvUnderTest, root: &Path) -> anyhow::Result<CellDirs> {
    let dirs = make_layout(root).context("creating the cell layout")?;
    stage_binary(&uv.uv, &dirs.bin.join("uv")).context("staging uv")?;
    stage_binary(&uv.uvx, &dirs.bin.join("uvx")).context("staging uvx")?;
    crate::wheel::build_fixture_wheels(&dirs.wheels)?;
    Ok(dirs)
}

/// The cell's context over laid-out `dirs`.
fn cell<'a>(
    result: &'a mut CellResult,
    helper: &'a Path,
    opts: &'a CellOptions,
    python: PathBuf,
    dirs: CellDirs,
    reference: Option<Result<writes::Reference, String>>,
) -> steps::Cell<'a> {
    steps::Cell {
        sandbox: result.sandbox,
        state: result.state,
        uids: result.state.uids(result.sandbox),
        reference,
        foreign: Vec::new(),
        spec: result.scenario.spec(),
        helper,
        opts,
        uv: dirs.bin.join("uv"),
        uvx: dirs.bin.join("uvx"),
        dirs,
        python,
        result,
    }
}

/// Lay out `root`, warm, run the steps, release the sandbox.
fn in_root(
    result: &mut CellResult,
    uv: &UvUnderTest,
    helper: &Path,
    opts: &CellOptions,
    python: PathBuf,
    root: &Path,
    reference: Option<Result<writes::Reference, String>>,
) -> anyhow::Result<Outcome> {
    let dirs = lay_out(uv, root)?;
    let mut cell = cell(result, helper, opts, python, dirs, reference);
    let outcome = cell.warm_up().and_then(|()| cell.run());
    // Foreign-owner as non-root strips write bits, a foreign state gives a piece away; take
    // them back so the root can be removed.
    cell.release();
    outcome
}

/// The same steps in the slot of (uv, scenario, state) in `store`: warmed there by the first
/// cell of that key, a fresh copy of that warm tree for every other (see [`slot`]).
fn in_slot(
    result: &mut CellResult,
    uv: &UvUnderTest,
    helper: &Path,
    opts: &CellOptions,
    python: PathBuf,
    store: &Path,
    reference: Option<Result<writes::Reference, String>>,
) -> anyhow::Result<Outcome> {
    // What the cells do that outlives them goes into the store's journal (`uvfix_run`).
    uvfix_run::journal::attach(store).context("opening the store's journal")?;
    let slot = slot::Slot::claim(store, &slot_key(uv, result, &python)?)?;
    let warm = !slot.is_warm();
    let dirs = if warm {
        slot.reset()?;
        lay_out(uv, &slot.root)?
    } else {
        let dirs = make_layout(&slot.root).context("creating the cell layout")?;
        slot.restore(&dirs.layout.cache)?;
        dirs
    };
    let name = result.scenario.name();
    let keep = opts.keep_root;
    let mut cell = cell(result, helper, opts, python, dirs, reference);
    let outcome = if warm {
        cell.warm_up()
            .and_then(|()| slot.save(&cell.dirs.layout.cache))
            .and_then(|()| cell.run())
    } else {
        cell.run()
    };
    cell.release();
    if keep {
        cell.result.root = Some(slot::keep_copy(&slot.root, name)?);
    }
    // The run's last cell of this key removes the slot and its snapshot: nothing later reads
    // them. Any other clears the slot for the next cell, which warms afresh where it cannot.
    if opts.release_slot {
        if let Err(e) = slot.reset() {
            eprintln!("uvfix: removing {}: {e:#}", slot.root.display());
        }
    } else if let Err(e) = slot.clear() {
        eprintln!("uvfix: clearing {}: {e:#}", slot.root.display());
        let _ = slot.reset();
    }
    outcome
}

/// What a warm tree depends on: the binary (path, size, mtime), the build, the scenario, the
/// state (cells of one key share a slot and take turns, so the state keeps keys apart that
/// would otherwise contend) and the interpreter.
fn slot_key(uv: &UvUnderTest, result: &CellResult, python: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs_err::metadata(&uv.uv)?;
    let binary = format!(
        "{}:{}:{}.{}",
        uv.uv.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    Ok(slot::key(&[
        binary.as_bytes(),
        uv.build.to_string().as_bytes(),
        result.scenario.name().as_bytes(),
        result.state.name().as_bytes(),
        python.as_os_str().as_encoded_bytes(),
    ]))
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
    fn official_uv_reason_is_actionable() {
        let bad = UvUnderTest::new(Build::Pristine, "/nonexistent/uv");
        assert_eq!(bad.uvx, Path::new("/nonexistent/uvx"));
        assert!(bad.check().is_err());
    }
}
