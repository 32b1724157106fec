//! Expected outcomes as data, and the judge that turns an observation into an [`Outcome`].
//!
//! [`RULES`] is one ordered table; the first matching row wins. The patched uv must pass every
//! warm cell in every denying sandbox. Which rows apply to a uv is decided by what the build is
//! ([`Build::uv_sel`]), never by its name. Every unfixed uv (the pristine build, the official
//! 0.12.5 wheel) is expected to FAIL the cells the patch fixes, so a pristine cell that starts passing
//! is reported as a failure: we want to notice when upstream changes.
//!
//! Pristine rows were observed with the official uv 0.12.5 binary (docs/matrix.md, "What the
//! release does in each sandbox"); patched rows encode the goal until the patch lands.

use serde::{Deserialize, Serialize};
use uvfix_sandbox::Sandbox;

use crate::build::{Build, UvSel};
use crate::scenario::ScenarioId;
use crate::state::CacheState;

/// What a cell is expected to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// Exit 0, stdout predicate holds, cache unchanged.
    Pass,
    /// Known broken (pristine): any failure is an expected failure; a pass is reported.
    Fail,
    /// Success is impossible: a non-zero exit with a plain-words error, no panic, cache unchanged.
    PlainError,
    /// Either [`Expect::Pass`] or [`Expect::PlainError`].
    PassOrPlainError,
    /// Stops with an error: a non-zero exit, no panic, not killed. Where going on would be
    /// wrong (a writable cache whose `.lock` uv may not open: going on means going on without
    /// the lock), a run to success is the failure.
    Error,
}

/// The verdict of one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    /// Failed as expected (pristine on a read-only cache; a plain error where success is impossible).
    ExpectedFail,
    Fail(String),
    Skip(String),
}

impl Outcome {
    /// `pass`, `xfail`, `FAIL`, `skip`: the words in tables.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::ExpectedFail => "xfail",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skip(_) => "skip",
        }
    }

    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum SandboxSel {
    Any,
    /// `Sandbox::None`: a writable cache.
    Unsandboxed,
    /// Any sandbox that denies cache writes.
    Denying,
    /// A denying sandbox that also makes TMPDIR read-only.
    TmpReadOnly,
}

#[derive(Debug, Clone, Copy)]
pub enum ScenarioSel {
    Any,
    In(&'static [ScenarioId]),
}

#[derive(Debug, Clone, Copy)]
pub enum StateSel {
    Any,
    In(&'static [CacheState]),
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub uv: UvSel,
    pub sandbox: SandboxSel,
    pub scenario: ScenarioSel,
    pub state: StateSel,
    pub expect: Expect,
    pub why: &'static str,
}

const fn rule(
    uv: UvSel,
    sandbox: SandboxSel,
    scenario: ScenarioSel,
    state: StateSel,
    expect: Expect,
    why: &'static str,
) -> Rule {
    Rule {
        uv,
        sandbox,
        scenario,
        state,
        expect,
        why,
    }
}

use CacheState as St;
use ScenarioSel as Sc;
use StateSel as Ss;
use UvSel as U;

/// Scenarios that need a directory to write while uv runs: an interpreter query (a project's
/// `.venv` interpreter is never cached: S2, S6), or an environment the warm cache does not hold
/// (`--with`, and another interpreter than the one the cached environments were built with: S5,
/// S8, S9).
const NEEDS_WRITABLE_DIR: &[ScenarioId] = &[
    ScenarioId::S2,
    ScenarioId::S5,
    ScenarioId::S6,
    ScenarioId::S8,
    ScenarioId::S9,
];

/// Scenarios the stack does not fix yet: the patched build is expected to fail them in every
/// denying sandbox, as pristine does. The goal still covers them; this list is what is left.
pub const NOT_FIXED_YET: &[ScenarioId] = &[ScenarioId::S10];

/// First match wins.
pub const RULES: &[Rule] = &[
    // Measured: 0.12.5 opens `sdists-v9/.git` for writing at cache init and dies with EISDIR
    // ("Failed to initialize cache … Is a directory (os error 21)"), even with a writable cache.
    rule(
        U::Unfixed,
        SandboxSel::Unsandboxed,
        Sc::Any,
        Ss::In(&[St::GitMarkerIsDir]),
        Expect::Fail,
        "0.12.5 dies with EISDIR on a `.git` directory marker even on a writable cache",
    ),
    // Measured as a non-root user (ci/as-runner.sh; root opens a mode-000 file regardless):
    // 0.12.5 opens `.lock` read-write even in a writable cache and stops at "Could not acquire
    // lock … failed to open file `…/.lock`: Permission denied (os error 13)", every scenario.
    // The stack must not run without the lock here either (the `Expect::Error` row below).
    rule(
        U::Unfixed,
        SandboxSel::Unsandboxed,
        Sc::Any,
        Ss::In(&[St::LockMode000]),
        Expect::Fail,
        "0.12.5 cannot open a mode-000 `.lock` for writing, even in a writable cache",
    ),
    // The foreign states, measured as uid 65534 owning the cache with root owning the piece
    // (`cargo xtask matrix --sandbox none`, the pristine build): every scenario stops at
    // "Could not acquire lock … failed to open file `…/.lock`: Permission denied (os error 13)".
    rule(
        U::Unfixed,
        SandboxSel::Unsandboxed,
        Sc::Any,
        Ss::In(&[St::LockForeign]),
        Expect::Fail,
        "0.12.5 cannot open another user's 0600 `.lock`, even in a writable cache",
    ),
    // Measured: every scenario stops at "Failed to initialize cache … failed to open file
    // `…/sdists-v9/.git`: Permission denied (os error 13)", unslothai/unsloth#10647's error.
    rule(
        U::Unfixed,
        SandboxSel::Unsandboxed,
        Sc::Any,
        Ss::In(&[St::MarkerForeign]),
        Expect::Fail,
        "0.12.5 opens existing markers for writing, even another user's",
    ),
    // Measured: S1–S7 only read the environments bucket and pass; S8 stops at "failed to
    // create directory `…/environments-v2/<key>`: Permission denied (os error 13)", S9 at
    // "failed to remove file `…/environments-v2/script-<key>/CACHEDIR.TAG`: Permission denied".
    rule(
        U::Unfixed,
        SandboxSel::Unsandboxed,
        Sc::In(&[ScenarioId::S8, ScenarioId::S9]),
        Ss::In(&[St::BucketForeign]),
        Expect::Fail,
        "0.12.5 must write a new environment into the refused bucket",
    ),
    // The target semantics: a run without the lock only where the cache refused a write.
    // Here the cache is writable and its `.lock` exists: an error as before (or waiting),
    // never a lockless run. The S1 cell's lock probe checks the lock itself. A mode-000
    // `.lock` (which only a non-root runner meets here) is the same case.
    rule(
        U::Fixed,
        SandboxSel::Unsandboxed,
        Sc::Any,
        Ss::In(&[St::LockForeign, St::LockMode000]),
        Expect::Error,
        "a writable cache whose `.lock` cannot be opened: an error, never a run without the lock",
    ),
    // The environment has to be linked from the refused bucket: the design tier (`fallback`)
    // stores an ephemeral `uvx` environment in the archive and uses it there, and builds a
    // script's in a temporary directory; every other bucket is written as pristine writes it.
    rule(
        U::Fixed,
        SandboxSel::Unsandboxed,
        Sc::In(&[ScenarioId::S8, ScenarioId::S9]),
        Ss::In(&[St::BucketForeign]),
        Expect::Pass,
        "a new environment in a bucket another user owns: used without the refused link",
    ),
    // A writable cache and a marker that cannot be written: tolerating it is a bonus.
    rule(
        U::Fixed,
        SandboxSel::Unsandboxed,
        Sc::Any,
        Ss::In(&[St::GitMarkerIsDir]),
        Expect::PassOrPlainError,
        "writable cache with a directory where a marker file belongs",
    ),
    // A writable cache: uv repairs the damage (measured: recreates .gitignore, .lock,
    // CACHEDIR.TAG; creates an absent cache) and works.
    rule(
        U::Any,
        SandboxSel::Unsandboxed,
        Sc::Any,
        Ss::Any,
        Expect::Pass,
        "writable cache",
    ),
    // No cache and none can be created; with TMPDIR read-only too there is nowhere to put
    // even a throwaway one. Measured: exit 2 with an error naming both directories.
    rule(
        U::Fixed,
        SandboxSel::TmpReadOnly,
        Sc::Any,
        Ss::In(&[St::CacheAbsent]),
        Expect::PlainError,
        "no cache, and neither the cache nor TMPDIR can be written",
    ),
    // The interpreter query writes its script into a temporary directory, `uv run --with`
    // layers a temporary environment over the cached one, and another interpreter needs
    // environments the cache does not hold: with the cache and TMPDIR both read-only there is
    // nowhere to put them. The plain-words error.
    rule(
        U::Fixed,
        SandboxSel::TmpReadOnly,
        Sc::In(NEEDS_WRITABLE_DIR),
        Ss::Any,
        Expect::PlainError,
        "an interpreter query or a new environment, and neither the cache nor TMPDIR is writable",
    ),
    // Without a cache, the patch falls back to a temporary one, as `--no-cache` does, and the
    // local wheels fill it: every scenario works and the cache location stays absent.
    rule(
        U::Fixed,
        SandboxSel::Denying,
        Sc::Any,
        Ss::In(&[St::CacheAbsent]),
        Expect::Pass,
        "no cache and none can be created: a temporary cache for this run",
    ),
    // Not fixed yet: the project's own build is made under a lock in `sdists-v9/editable/`,
    // and neither tier builds it outside a cache that refuses it (astral-sh/uv#16820's case of
    // a fresh clone). Measured with the whole stack: "Failed to acquire lock on the
    // distribution cache … failed to create directory `…/sdists-v9/editable/…`: Permission
    // denied" (or "Read-only file system"), without hints. A pass is reported, so the row goes
    // when the stack learns it.
    rule(
        U::Fixed,
        SandboxSel::Denying,
        Sc::In(NOT_FIXED_YET),
        Ss::Any,
        Expect::Fail,
        "a project build the cache does not hold: not built outside a cache that refuses it yet",
    ),
    rule(
        U::Fixed,
        SandboxSel::Denying,
        Sc::Any,
        Ss::Any,
        Expect::Pass,
        "the patch: a read-only cache is read, never initialised or locked for writing",
    ),
    // Measured with the official 0.12.5 in landlock, ro-home, ro-root and foreign-owner, every
    // scenario, every state: exit 2, "Failed to initialize cache" (writing .gitignore,
    // CACHEDIR.TAG or sdists-v9/.git; creating the cache dir) or "Could not acquire lock"
    // (a temp file next to .lock).
    rule(
        U::Unfixed,
        SandboxSel::Denying,
        Sc::Any,
        Ss::Any,
        Expect::Fail,
        "0.12.5 initialises and write-locks the cache before reading it",
    ),
];

fn uv_matches(sel: UvSel, build: &Build) -> bool {
    sel == U::Any || sel == build.uv_sel()
}

fn sandbox_matches(sel: SandboxSel, sandbox: Sandbox) -> bool {
    match sel {
        SandboxSel::Any => true,
        SandboxSel::Unsandboxed => sandbox == Sandbox::None,
        SandboxSel::Denying => sandbox != Sandbox::None,
        SandboxSel::TmpReadOnly => sandbox != Sandbox::None && !sandbox.tmp_writable(),
    }
}

fn scenario_matches(sel: ScenarioSel, scenario: ScenarioId) -> bool {
    match sel {
        Sc::Any => true,
        Sc::In(list) => list.contains(&scenario),
    }
}

fn state_matches(sel: StateSel, state: CacheState) -> bool {
    match sel {
        Ss::Any => true,
        Ss::In(list) => list.contains(&state),
    }
}

/// The matching rule (its `why` explains the expectation in reports).
pub fn rule_for(
    build: &Build,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
) -> &'static Rule {
    // A prefix of the stack: the whole stack's row where the step that fixes the cell is
    // applied (see `crate::stack`), pristine's row where it is not.
    if let Build::Step { applied, of } = *build
        && applied < of
    {
        let fixed = rule_for(&Build::Patched, sandbox, scenario, state);
        let unfixed = rule_for(&Build::Pristine, sandbox, scenario, state);
        return match crate::stack::turns_green(sandbox, scenario, state) {
            Some(step) if crate::stack::applied(step, applied) => fixed,
            // No step makes the cell succeed: the whole stack only improves its error.
            None if fixed.expect == unfixed.expect => fixed,
            _ => unfixed,
        };
    }
    RULES
        .iter()
        .find(|r| {
            uv_matches(r.uv, build)
                && state_matches(r.state, state)
                && scenario_matches(r.scenario, scenario)
                && sandbox_matches(r.sandbox, sandbox)
        })
        // The last rows cover every (uv, sandbox) pair; keep it total anyway.
        .unwrap_or(&FALLBACK)
}

const FALLBACK: Rule = rule(
    U::Any,
    SandboxSel::Any,
    Sc::Any,
    Ss::Any,
    Expect::Pass,
    "default",
);

pub fn expected(
    build: &Build,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
) -> Expect {
    rule_for(build, sandbox, scenario, state).expect
}

/// What a cell saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `None`: killed by a signal (or by us on timeout).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub stdout_ok: bool,
    pub stderr: String,
    /// Cache diff, only when it counts (inside a denying sandbox); `None` = unchanged.
    pub cache_change: Option<String>,
}

/// Marks of a crash rather than an error message.
pub fn panicked(obs: &Observed) -> bool {
    obs.exit_code == Some(101) || obs.stderr.contains("panicked at")
}

/// "A plain-words read-only error": uv's own explanation, never only the raw OS error. It
/// says that the cache (or the temporary directory uv falls back to) is read-only or not
/// writable, and names a way out: `UV_CACHE_DIR`, or `TMPDIR`.
///
/// A raw error can mention a read-only file system and a path inside `~/.cache`, so neither
/// is enough alone; only uv's explanation names the way out.
pub fn plain_error(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    let says_what = lower.contains("cache")
        && ["read-only", "not writable"]
            .iter()
            .any(|w| lower.contains(w));
    let says_how = ["uv_cache_dir", "tmpdir"].iter().any(|w| lower.contains(w));
    lower.contains("error") && says_what && says_how
}

fn describe_failure(obs: &Observed) -> String {
    match obs.exit_code {
        _ if panicked(obs) => format!("panicked (exit {:?})", obs.exit_code),
        Some(0) => "exit 0 but stdout lacks the expected line".into(),
        Some(code) => format!("exit {code}: {}", first_error_line(&obs.stderr)),
        None => "killed by a signal".into(),
    }
}

/// The first `error:` line of uv's stderr (or the first line), for reports.
pub fn first_error_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("error"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no stderr)");
    let line = line.trim();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Compare an observation with the expectation.
pub fn judge(expect: Expect, obs: &Observed) -> Outcome {
    if obs.timed_out {
        return Outcome::Fail("timed out (killed)".into());
    }
    if let Some(change) = &obs.cache_change {
        // A write got into the read-only cache: never acceptable, whatever the uv.
        return Outcome::Fail(format!("cache changed inside the sandbox: {change}"));
    }
    let passed = obs.exit_code == Some(0) && obs.stdout_ok;
    let clean_error =
        obs.exit_code.is_some_and(|c| c != 0) && !panicked(obs) && plain_error(&obs.stderr);
    match expect {
        Expect::Pass if passed => Outcome::Pass,
        Expect::Pass => Outcome::Fail(describe_failure(obs)),
        Expect::Fail if passed => {
            Outcome::Fail("unexpectedly passed (upstream changed? update the expect table)".into())
        }
        Expect::Fail => Outcome::ExpectedFail,
        Expect::PassOrPlainError if passed => Outcome::Pass,
        Expect::PlainError if passed => {
            Outcome::Fail("unexpectedly passed where a plain error was expected".into())
        }
        Expect::PlainError | Expect::PassOrPlainError if clean_error => Outcome::ExpectedFail,
        Expect::PlainError | Expect::PassOrPlainError => Outcome::Fail(format!(
            "not a plain-words error: {}",
            describe_failure(obs)
        )),
        Expect::Error if passed => {
            Outcome::Fail("ran to success where it must stop with an error".into())
        }
        Expect::Error if obs.exit_code.is_some_and(|c| c != 0) && !panicked(obs) => {
            Outcome::ExpectedFail
        }
        Expect::Error => Outcome::Fail(format!("not an error: {}", describe_failure(obs))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    fn obs(exit: i32, stdout_ok: bool, stderr: &str) -> Observed {
        Observed {
            exit_code: Some(exit),
            stdout_ok,
            stderr: stderr.into(),
            ..Observed::default()
        }
    }

    const EROFS: &str = "error: Could not acquire lock\n  Caused by: Could not create temporary file\n  Caused by: Read-only file system (os error 30) at path \"/h/.cache/uv/.tmpmn12wj\"";
    const EACCES: &str =
        "error: failed to open file `/h/.cache/uv/sdists-v9/.git`: Permission denied (os error 13)";
    const EPERM: &str = "error: failed to open file `/h/.cache/uv/sdists-v9/.git`: Operation not permitted (os error 1)";
    const INIT: &str = "error: Failed to initialize cache at `/h/.cache/uv`\n  Caused by: failed to create directory `/h/.cache/uv`: Read-only file system (os error 30)";
    const PLAIN: &str = "error: The cache directory `/h/.cache/uv` is not writable\n  Caused by: Read-only file system (os error 30)\n\nhint: The temporary directory `/tmp` is not writable either; set `TMPDIR` to a writable directory\nhint: To use another cache, set `UV_CACHE_DIR` to a writable directory";

    /// uv's raw messages, as the sandboxes produce them, are exactly what the check exists to
    /// reject; uv's explanation passes.
    #[test_case(EROFS => false ; "erofs lock")]
    #[test_case(EACCES => false ; "eacces marker")]
    #[test_case(EPERM => false ; "eperm marker")]
    #[test_case(INIT => false ; "init")]
    #[test_case("error: No solution found when resolving: offline, no cache" => false ; "offline")]
    #[test_case(PLAIN => true ; "explained")]
    fn plain_words(stderr: &str) -> bool {
        plain_error(stderr)
    }

    #[test_case(Expect::Pass, obs(0, true, "") => Outcome::Pass ; "pass")]
    #[test_case(Expect::Pass, obs(0, false, "") => matches Outcome::Fail(_) ; "wrong stdout")]
    #[test_case(Expect::Pass, obs(2, false, EROFS) => matches Outcome::Fail(_) ; "error")]
    #[test_case(Expect::Fail, obs(2, false, EROFS) => Outcome::ExpectedFail ; "xfail")]
    #[test_case(Expect::Fail, obs(101, false, "thread 'main' panicked at x") => Outcome::ExpectedFail ; "xfail panic")]
    #[test_case(Expect::Fail, obs(0, true, "") => matches Outcome::Fail(_) ; "unexpected pass")]
    #[test_case(Expect::PlainError, obs(2, false, PLAIN) => Outcome::ExpectedFail ; "plain")]
    #[test_case(Expect::PlainError, obs(2, false, EROFS) => matches Outcome::Fail(_) ; "raw is not plain")]
    #[test_case(Expect::PlainError, obs(101, false, "thread 'main' panicked at src/x.rs: read-only") => matches Outcome::Fail(_) ; "panic is not plain")]
    #[test_case(Expect::PlainError, obs(1, false, "Traceback") => matches Outcome::Fail(_) ; "no words")]
    #[test_case(Expect::PlainError, obs(0, true, "") => matches Outcome::Fail(_) ; "plain expected but passed")]
    #[test_case(Expect::PassOrPlainError, obs(0, true, "") => Outcome::Pass ; "either pass")]
    #[test_case(Expect::PassOrPlainError, obs(2, false, PLAIN) => Outcome::ExpectedFail ; "either error")]
    #[test_case(Expect::PassOrPlainError, obs(2, false, EACCES) => matches Outcome::Fail(_) ; "either raw")]
    #[test_case(Expect::Error, obs(2, false, EACCES) => Outcome::ExpectedFail ; "error")]
    #[test_case(Expect::Error, obs(0, true, "warning: using the cache without it") => matches Outcome::Fail(_) ; "error expected but passed")]
    #[test_case(Expect::Error, obs(101, false, "thread 'main' panicked at x") => matches Outcome::Fail(_) ; "a panic is not an error")]
    #[test_case(Expect::Error, obs(0, false, "") => matches Outcome::Fail(_) ; "exit 0 is not an error")]
    fn judges(expect: Expect, o: Observed) -> Outcome {
        judge(expect, &o)
    }

    #[test]
    fn cache_change_and_timeout_always_fail() {
        let mut o = obs(2, false, EROFS);
        o.cache_change = Some("+1 -0 ~0".into());
        assert!(judge(Expect::Fail, &o).is_fail());
        let o = Observed {
            timed_out: true,
            ..Observed::default()
        };
        assert!(judge(Expect::PassOrPlainError, &o).is_fail());
    }

    #[test]
    fn first_error_line_prefers_error() {
        assert_eq!(first_error_line(EROFS), "error: Could not acquire lock");
        assert_eq!(first_error_line("\n  boom\n"), "boom");
        assert_eq!(first_error_line(""), "(no stderr)");
    }

    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S3, CacheState::CacheAbsent => Expect::Pass ; "writable")]
    #[test_case(Build::Pristine, Sandbox::None, ScenarioId::S1, CacheState::Warm => Expect::Pass ; "pristine writable")]
    #[test_case(Build::Pristine, Sandbox::None, ScenarioId::S4, CacheState::LockMode000 => Expect::Fail ; "pristine lock 000 writable")]
    #[test_case(Build::Patched, Sandbox::RoHome, ScenarioId::S2, CacheState::CacheAbsent => Expect::Pass ; "absent but synced")]
    #[test_case(Build::Patched, Sandbox::Landlock, ScenarioId::S4, CacheState::CacheAbsent => Expect::Pass ; "absent tool")]
    #[test_case(Build::Patched, Sandbox::RoRoot, ScenarioId::S1, CacheState::CacheAbsent => Expect::PlainError ; "absent ro tmp")]
    #[test_case(Build::Patched, Sandbox::RoRoot, ScenarioId::S3, CacheState::Warm => Expect::Pass ; "ro tmp writes env")]
    #[test_case(Build::Patched, Sandbox::RoRoot, ScenarioId::S5, CacheState::Warm => Expect::PlainError ; "ro tmp with overlay")]
    #[test_case(Build::Patched, Sandbox::RoRoot, ScenarioId::S1, CacheState::Warm => Expect::Pass ; "ro tmp, cached interpreter")]
    #[test_case(Build::Patched, Sandbox::RoRoot, ScenarioId::S2, CacheState::Warm => Expect::PlainError ; "ro tmp, project interpreter query")]
    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S1, CacheState::LockMode000 => Expect::Error ; "writable cache never lockless")]
    #[test_case(Build::Patched, Sandbox::ForeignOwner, ScenarioId::S7, CacheState::LockMode000 => Expect::Pass ; "patched damaged")]
    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S1, CacheState::GitMarkerIsDir => Expect::PassOrPlainError ; "patched git dir writable")]
    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S4, CacheState::LockForeign => Expect::Error ; "patched foreign lock writable")]
    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S4, CacheState::LockMode000 => Expect::Error ; "patched lock 000 writable")]
    #[test_case(Build::Pristine, Sandbox::None, ScenarioId::S4, CacheState::LockForeign => Expect::Fail ; "pristine foreign lock writable")]
    #[test_case(Build::Patched, Sandbox::ForeignOwner, ScenarioId::S4, CacheState::LockForeign => Expect::Pass ; "patched foreign lock read-only")]
    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S2, CacheState::MarkerForeign => Expect::Pass ; "patched foreign markers")]
    #[test_case(Build::Pristine, Sandbox::None, ScenarioId::S2, CacheState::MarkerForeign => Expect::Fail ; "pristine foreign markers")]
    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S5, CacheState::BucketForeign => Expect::Pass ; "patched foreign bucket read")]
    #[test_case(Build::Patched, Sandbox::None, ScenarioId::S8, CacheState::BucketForeign => Expect::Pass ; "patched foreign bucket written")]
    #[test_case(Build::Pristine, Sandbox::None, ScenarioId::S5, CacheState::BucketForeign => Expect::Pass ; "pristine foreign bucket read")]
    #[test_case(Build::Official(semver::Version::new(0, 12, 5)), Sandbox::None, ScenarioId::S1, CacheState::GitMarkerIsDir => Expect::Fail ; "upstream git dir writable")]
    #[test_case(Build::Pristine, Sandbox::Landlock, ScenarioId::S5, CacheState::MarkerMissing => Expect::Fail ; "upstream denied")]
    #[test_case(Build::Upstream, Sandbox::Landlock, ScenarioId::S1, CacheState::Warm => Expect::Pass ; "upstream with the series")]
    #[test_case(Build::Step { applied: 1, of: 8 }, Sandbox::Landlock, ScenarioId::S1, CacheState::Warm => Expect::Fail ; "below the step that fixes it")]
    #[test_case(Build::Step { applied: 2, of: 8 }, Sandbox::Landlock, ScenarioId::S1, CacheState::Warm => Expect::Pass ; "with the step that fixes it")]
    #[test_case(Build::Step { applied: 8, of: 9 }, Sandbox::RoRoot, ScenarioId::S5, CacheState::Warm => Expect::Fail ; "impossible before the whole stack")]
    #[test_case(Build::Step { applied: 4, of: 4 }, Sandbox::Landlock, ScenarioId::S1, CacheState::Warm => Expect::Pass ; "whole stack")]
    fn table(build: Build, sandbox: Sandbox, scenario: ScenarioId, state: CacheState) -> Expect {
        expected(&build, sandbox, scenario, state)
    }

    /// The goal, stated once more over the whole table: patched passes every warm cell in
    /// every denying sandbox (except where a directory must be written and TMPDIR is read-only
    /// too, and the scenarios not fixed yet), and upstream is expected to fail every denying
    /// cell.
    #[test]
    fn table_encodes_the_goal() {
        for &sandbox in Sandbox::ALL.iter().filter(|s| **s != Sandbox::None) {
            for &scenario in ScenarioId::ALL {
                if NOT_FIXED_YET.contains(&scenario) {
                    assert_eq!(
                        expected(&Build::Patched, sandbox, scenario, CacheState::Warm),
                        Expect::Fail,
                        "{sandbox} {scenario}: listed as not fixed yet"
                    );
                    continue;
                }
                let want = if !sandbox.tmp_writable() && NEEDS_WRITABLE_DIR.contains(&scenario) {
                    Expect::PlainError
                } else {
                    Expect::Pass
                };
                assert_eq!(
                    expected(&Build::Patched, sandbox, scenario, CacheState::Warm),
                    want,
                    "{sandbox} {scenario}"
                );
                for &state in CacheState::ALL {
                    assert_eq!(
                        expected(&Build::Pristine, sandbox, scenario, state),
                        Expect::Fail
                    );
                    assert_ne!(
                        expected(&Build::Patched, sandbox, scenario, state),
                        Expect::Fail
                    );
                }
            }
        }
        assert!(RULES.iter().all(|r| !r.why.is_empty()));
    }
}
