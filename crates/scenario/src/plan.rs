//! Which cells the matrix has, shared by `cargo xtask matrix` and the test suite so the two
//! can never disagree: every uv under test × every sandbox × every scenario × every cache
//! state. A combination that means nothing here (see [`CacheState::skip_reason`]: a state
//! that cannot bite for the uid uv runs as) is a cell that is skipped with its reason.

use std::collections::BTreeMap;

use uvfix_sandbox::{Availability, Sandbox};

use crate::cell::UvUnderTest;
use crate::scenario::ScenarioId;
use crate::state::CacheState;

/// One cell to run, or to report as skipped.
#[derive(Debug, Clone)]
pub struct Planned {
    pub uv: UvUnderTest,
    pub sandbox: Sandbox,
    pub scenario: ScenarioId,
    pub state: CacheState,
    /// Why the sandbox cannot run on this machine; such cells are skips, never passes.
    pub unavailable: Option<String>,
    /// Why the cache state means nothing in this sandbox here; such cells are skips too.
    pub not_applicable: Option<String>,
}

impl Planned {
    /// `patched/ro-home/S1/warm`: the test name and the row key.
    pub fn name(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.uv.build,
            self.sandbox.name(),
            self.scenario.name(),
            self.state.name()
        )
    }
}

/// Filters; `None` means all.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub sandboxes: Option<Vec<Sandbox>>,
    pub scenarios: Option<Vec<ScenarioId>>,
    pub states: Option<Vec<CacheState>>,
}

fn pick<T: Copy>(all: &[T], chosen: &Option<Vec<T>>) -> Vec<T> {
    chosen.clone().unwrap_or_else(|| all.to_vec())
}

/// Every meaningful cell for `uvs`, in a stable order.
pub fn cells(uvs: &[UvUnderTest], filter: &Filter) -> Vec<Planned> {
    let sandboxes: Vec<Sandbox> = pick(Sandbox::ALL, &filter.sandboxes);
    let availability: BTreeMap<Sandbox, Option<String>> = sandboxes
        .iter()
        .map(|&sandbox| {
            let why = match sandbox.availability() {
                Availability::Available => None,
                Availability::Unavailable(why) => Some(why),
            };
            (sandbox, why)
        })
        .collect();
    let mut out = Vec::new();
    for uv in uvs {
        for scenario in pick(ScenarioId::ALL, &filter.scenarios) {
            for state in pick(CacheState::ALL, &filter.states) {
                for &sandbox in &sandboxes {
                    out.push(Planned {
                        uv: uv.clone(),
                        sandbox,
                        scenario,
                        state,
                        unavailable: availability[&sandbox].clone(),
                        not_applicable: state.skip_reason(sandbox),
                    });
                }
            }
        }
    }
    out
}
