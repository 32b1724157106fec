//! What a build is compared with another by, cell by cell: whether uv did the job
//! ([`succeeded`]) in a cell named without its build ([`Key`]). `cargo xtask matrix --steps`
//! compares each prefix of the stack with the one below it, `upstream validate` an upstream
//! revision with the one before it.

use serde::Serialize;
use uvfix_sandbox::Sandbox;

use crate::cell::CellResult;
use crate::{CacheState, Outcome, ScenarioId};

/// A cell without its build: `ro-home/S1/warm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub sandbox: Sandbox,
    pub scenario: ScenarioId,
    pub state: CacheState,
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.sandbox, self.scenario, self.state)
    }
}

/// Did uv do the job in this cell: exit 0, the expected output, the cache untouched.
/// `None` for a skipped cell. `upstream validate` compares revisions by the same test.
pub fn succeeded(result: &CellResult) -> Option<bool> {
    if let Outcome::Skip(_) = result.outcome {
        return None;
    }
    // Unsandboxed, uv may write its cache; inside a sandbox nothing may change.
    let cache_untouched =
        result.sandbox == Sandbox::None || result.cache_diff.as_ref().is_none_or(|d| d.is_empty());
    Some(
        result.exit_code == Some(0)
            && result.scenario.spec().stdout_ok(&result.stdout)
            && cache_untouched,
    )
}
