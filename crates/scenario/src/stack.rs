//! Which step of the stack turns each cell green: the per-step expectations, as data.
//!
//! `cargo xtask matrix --steps` runs every cell with pristine uv and with each prefix of the
//! stack, and checks that each step turns green exactly the cells this table gives it, and
//! that no step turns a cell red. Steps are named by their ids in `patches/series.toml`; a
//! step the table names that the stack lacks (renamed, dropped) stops the run.
//!
//! [`STEP_RULES`] is ordered; the first matching row wins. `None` means no step changes the
//! cell: it passes with pristine uv already (a writable cache), or never passes (where
//! success is impossible and the whole stack only improves the error message).

use uvfix_sandbox::Sandbox;

use crate::scenario::ScenarioId;
use crate::state::CacheState;

/// Which sandboxes a row is about.
#[derive(Debug, Clone, Copy)]
pub enum Sandboxes {
    /// A writable cache.
    Unsandboxed,
    /// Every sandbox that denies writes to the cache.
    Denying,
    /// A denying sandbox that leaves TMPDIR writable.
    TmpWritable,
    /// A denying sandbox whose TMPDIR is read-only too.
    TmpReadOnly,
    In(&'static [Sandbox]),
}

impl Sandboxes {
    fn matches(self, sandbox: Sandbox) -> bool {
        match self {
            Sandboxes::Unsandboxed => sandbox == Sandbox::None,
            Sandboxes::Denying => sandbox != Sandbox::None,
            Sandboxes::TmpWritable => sandbox != Sandbox::None && sandbox.tmp_writable(),
            Sandboxes::TmpReadOnly => sandbox != Sandbox::None && !sandbox.tmp_writable(),
            Sandboxes::In(list) => list.contains(&sandbox),
        }
    }
}

/// One row: the cells it covers and the step that turns them green.
#[derive(Debug, Clone, Copy)]
pub struct StepRule {
    pub sandboxes: Sandboxes,
    /// Empty: every scenario.
    pub scenarios: &'static [ScenarioId],
    /// Empty: every cache state.
    pub states: &'static [CacheState],
    pub step: Option<&'static str>,
    pub why: &'static str,
}

const fn row(
    sandboxes: Sandboxes,
    scenarios: &'static [ScenarioId],
    states: &'static [CacheState],
    step: Option<&'static str>,
    why: &'static str,
) -> StepRule {
    StepRule {
        sandboxes,
        scenarios,
        states,
        step,
        why,
    }
}

/// The stack's steps in order, as `patches/series.toml` names them; `cargo xtask matrix
/// --steps` refuses to run when the two disagree.
pub const STACK: &[&str] = &[
    "markers",
    "shared-locks",
    "missing-lock",
    "interpreter-info",
    "hints",
    "query-dir",
    "uvx-lock",
    "fallback",
    "temporary-cache",
];

/// Whether `step` is among the first `applied` steps of [`STACK`].
pub fn applied(step: &str, applied: usize) -> bool {
    STACK
        .iter()
        .position(|s| *s == step)
        .is_some_and(|i| i < applied)
}

use CacheState as St;
use Sandboxes as Sb;
use ScenarioId as S;

/// Scenarios that need a directory to write while uv runs: an interpreter query (a project's
/// `.venv` interpreter, S2 and S6) or a new environment (S5, S8, S9).
const NEEDS_WRITABLE_DIR: &[ScenarioId] = &[S::S2, S::S5, S::S6, S::S8, S::S9];

/// Sandboxes whose home is read-only as well as the cache: `uvx` cannot take the tools
/// directory's exclusive lock there. srt too: it makes writable only what `allowWrite` lists.
const HOME_READ_ONLY: &[Sandbox] = &[
    Sandbox::Landlock,
    Sandbox::RoHome,
    Sandbox::RoRoot,
    Sandbox::Codex,
    Sandbox::CodexCurrent,
    Sandbox::SandboxRuntime,
    Sandbox::DockerReadOnly,
];

/// The first matching row wins. Measured with `cargo xtask matrix --steps` (see
/// `docs/stack.md` for how to regenerate the step-by-step table).
pub const STEP_RULES: &[StepRule] = &[
    row(
        Sb::Unsandboxed,
        &[],
        &[St::GitMarkerIsDir],
        Some("markers"),
        "upstream opens `sdists-v9/.git` for writing even when it is a directory",
    ),
    // As a non-root user, no build can open a mode-000 `.lock` (or another user's 0600 one) in
    // a writable cache, and a writable cache is never used without its lock (`uv cache clean`
    // relies on it, #15888): no step turns these green.
    row(
        Sb::Unsandboxed,
        &[],
        &[St::LockMode000, St::LockForeign],
        None,
        "a writable cache whose `.lock` cannot be opened: an error with or without the stack",
    ),
    row(
        Sb::Unsandboxed,
        &[],
        &[St::MarkerForeign],
        Some("markers"),
        "upstream opens another user's existing markers for writing",
    ),
    // A new environment in a bucket another user owns: the design tier uses it without the
    // refused link (S8: stored in the archive, as a writable cache would; S9: in a temporary
    // directory).
    row(
        Sb::Unsandboxed,
        &[S::S8, S::S9],
        &[St::BucketForeign],
        Some("fallback"),
        "a new environment the refused bucket cannot link: used without the link",
    ),
    row(
        Sb::Unsandboxed,
        &[],
        &[],
        None,
        "a writable cache works without the stack",
    ),
    row(
        Sb::TmpReadOnly,
        &[],
        &[St::CacheAbsent],
        None,
        "no cache, and no writable directory for a temporary one",
    ),
    row(
        Sb::Denying,
        &[],
        &[St::CacheAbsent],
        Some("temporary-cache"),
        "no cache, and none can be created: a temporary one",
    ),
    // The project's own build goes under a lock in `sdists-v9/editable/`: no step builds it
    // outside a cache that refuses it yet.
    row(
        Sb::Denying,
        &[S::S10],
        &[],
        None,
        "a project build the cache does not hold: no step builds it outside the cache yet",
    ),
    // An interpreter query (a project's `.venv` interpreter is never cached) or a new
    // environment, and neither the cache nor TMPDIR takes the directory it needs.
    row(
        Sb::TmpReadOnly,
        NEEDS_WRITABLE_DIR,
        &[],
        None,
        "an interpreter query or a new environment, and no writable directory",
    ),
    row(
        Sb::Denying,
        &[S::S5, S::S8, S::S9],
        &[],
        Some("fallback"),
        "a new environment the cache does not hold: built outside it",
    ),
    row(
        Sb::In(HOME_READ_ONLY),
        &[S::S4],
        &[],
        Some("uvx-lock"),
        "uvx locks the read-only tools directory",
    ),
    row(
        Sb::TmpWritable,
        &[S::S2, S::S6],
        &[],
        Some("query-dir"),
        "a project's interpreter is queried on every run, in a temporary directory",
    ),
    // The container's `/usr/bin/python3` is the image's, not the host's the warm step ran:
    // the interpreter query runs again, and needs a temporary directory.
    row(
        Sb::In(&[Sandbox::DockerReadOnly]),
        &[S::S1, S::S3, S::S7],
        &[],
        Some("query-dir"),
        "another interpreter than the cache's: the query runs again in a temporary directory",
    ),
    row(
        Sb::Denying,
        &[],
        &[St::LockMissing],
        Some("missing-lock"),
        "the lock file is missing and the cache refuses to create it",
    ),
    // A non-root uid cannot open a mode-000 `.lock` at all, not even read-only, so the shared
    // lock cannot help; the cache refuses the lock file that would replace it. As root the state
    // runs only in foreign-owner (uid 65534), as a non-root runner in every sandbox. Another
    // user's 0600 `.lock` likewise (foreign-owner measured as root; the rest by reasoning).
    row(
        Sb::Denying,
        &[],
        &[St::LockMode000, St::LockForeign],
        Some("missing-lock"),
        "a `.lock` nobody may open in a cache that refuses a new one: used without it",
    ),
    // uv creates `.lock` with mode 0666: another user may still open it for writing.
    row(
        Sb::In(&[Sandbox::ForeignOwner]),
        &[],
        &[],
        Some("markers"),
        "only the markers are opened for writing",
    ),
    row(
        Sb::Denying,
        &[],
        &[],
        Some("shared-locks"),
        "every command takes a shared lock on the cache",
    ),
];

/// The row that decides `cell`.
pub fn rule_for(
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
) -> Option<&'static StepRule> {
    STEP_RULES.iter().find(|r| {
        r.sandboxes.matches(sandbox)
            && (r.scenarios.is_empty() || r.scenarios.contains(&scenario))
            && (r.states.is_empty() || r.states.contains(&state))
    })
}

/// The id of the step that turns the cell green, if any.
pub fn turns_green(
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
) -> Option<&'static str> {
    rule_for(sandbox, scenario, state)?.step
}

/// Whether [`STACK`] is the stack whose ids are `steps`, and every row names one of them.
pub fn check_stack(steps: &[&str]) -> Result<(), String> {
    if STACK != steps {
        return Err(format!(
            "the per-step expectations are written for the steps {}, but the stack has {}",
            STACK.join(", "),
            steps.join(", ")
        ));
    }
    match STEP_RULES
        .iter()
        .filter_map(|r| r.step)
        .find(|id| !STACK.contains(id))
    {
        Some(id) => Err(format!("a row names `{id}`, which is not a step")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    // The rows the all-sandbox run on base 0.13.6 corrected, next to their neighbours.
    #[test_case(Sandbox::DockerReadOnly, S::S1, St::Warm, Some("query-dir"); "docker-ro queries its own python")]
    #[test_case(Sandbox::DockerReadOnly, S::S1, St::LockMissing, Some("query-dir"); "before the missing lock")]
    #[test_case(Sandbox::DockerReadOnly, S::S4, St::Warm, Some("uvx-lock"); "docker-ro uvx")]
    #[test_case(Sandbox::RoHome, S::S1, St::Warm, Some("shared-locks"); "ro-home shares the host's python")]
    #[test_case(Sandbox::SandboxRuntime, S::S4, St::LockMissing, Some("uvx-lock"); "srt home is read-only")]
    #[test_case(Sandbox::RoRoot, S::S2, St::Warm, None; "ro-root project run: no writable directory for the query")]
    #[test_case(Sandbox::Landlock, S::S2, St::Warm, Some("query-dir"); "landlock project run: the query in TMPDIR")]
    #[test_case(Sandbox::Landlock, S::S9, St::Warm, Some("fallback"); "another interpreter's script environment")]
    #[test_case(Sandbox::None, S::S1, St::LockMode000, None; "a writable cache is never used without its lock")]
    #[test_case(Sandbox::ForeignOwner, S::S1, St::LockMode000, Some("missing-lock"); "foreign lock mode 000")]
    #[test_case(Sandbox::Landlock, S::S7, St::LockMode000, Some("missing-lock"); "non-root runner, lock mode 000")]
    #[test_case(Sandbox::DockerReadOnly, S::S1, St::LockMode000, Some("query-dir"); "docker-ro lock mode 000: the query comes later")]
    #[test_case(Sandbox::ForeignOwner, S::S1, St::Warm, Some("markers"); "foreign owner warm")]
    #[test_case(Sandbox::None, S::S1, St::Warm, None; "writable cache")]
    #[test_case(Sandbox::None, S::S1, St::MarkerForeign, Some("markers"); "foreign markers")]
    #[test_case(Sandbox::None, S::S1, St::LockForeign, None; "foreign lock writable: never green")]
    #[test_case(Sandbox::None, S::S3, St::LockMode000, None; "lock 000 writable: never green")]
    #[test_case(Sandbox::ForeignOwner, S::S1, St::LockForeign, Some("missing-lock"); "foreign lock read-only")]
    #[test_case(Sandbox::Landlock, S::S8, St::BucketForeign, Some("fallback"); "foreign bucket read-only")]
    #[test_case(Sandbox::None, S::S8, St::BucketForeign, Some("fallback"); "foreign bucket writable cache")]
    fn the_step_that_turns_a_cell_green(
        sandbox: Sandbox,
        scenario: ScenarioId,
        state: CacheState,
        step: Option<&str>,
    ) {
        assert_eq!(turns_green(sandbox, scenario, state), step);
    }

    #[test]
    fn every_row_names_a_step_of_the_stack() {
        assert_eq!(check_stack(STACK), Ok(()));
    }
}
