//! Two builds' cells side by side: per sandbox, how many succeed before and after, which
//! turned green and which turned red. "Succeed" is the per-step report's test
//! ([`uvfix_scenario::compare::succeeded`]): exit 0, the expected output, and inside a sandbox the cache
//! untouched. A cell skipped for either build (a sandbox this machine lacks, a state that does
//! not apply) is not counted; a cell whose sandbox did not prove its denial never ran uv, and
//! so never succeeds.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use uvfix_sandbox::Sandbox;
use uvfix_scenario::Build;
use uvfix_scenario::cell::CellResult;
use uvfix_scenario::compare::{Key, succeeded};

/// Per sandbox, the counts of the table.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Row {
    pub cells: usize,
    pub before: usize,
    pub after: usize,
    pub green: usize,
    pub red: usize,
}

/// What `after` changed against `before`, cell by cell.
#[derive(Debug, Default, Serialize)]
pub(super) struct Comparison {
    pub rows: BTreeMap<Sandbox, Row>,
    pub green: Vec<Key>,
    pub red: Vec<Key>,
    /// Sandboxes whose every cell was skipped, with the reason (a sandbox missing here).
    pub skipped: BTreeMap<Sandbox, String>,
}

impl Comparison {
    /// Compare the cells of `before` and `after` among `results` (other builds are ignored).
    pub(super) fn of(results: &[CellResult], before: &Build, after: &Build) -> Self {
        let mut by_key: BTreeMap<Key, [Option<bool>; 2]> = BTreeMap::new();
        let mut comparison = Self::default();
        for result in results {
            let side = match &result.uv_label {
                b if b == before => 0,
                b if b == after => 1,
                _ => continue,
            };
            let key = Key {
                sandbox: result.sandbox,
                scenario: result.scenario,
                state: result.state,
            };
            by_key.entry(key).or_default()[side] = succeeded(result);
            if let uvfix_scenario::Outcome::Skip(why) = &result.outcome {
                comparison
                    .skipped
                    .entry(result.sandbox)
                    .or_insert_with(|| why.clone());
            }
        }
        for (key, [b, a]) in by_key {
            let (Some(b), Some(a)) = (b, a) else { continue };
            // A sandbox with one counted cell is not "skipped".
            comparison.skipped.remove(&key.sandbox);
            let row = comparison.rows.entry(key.sandbox).or_default();
            row.cells += 1;
            row.before += usize::from(b);
            row.after += usize::from(a);
            match (b, a) {
                (false, true) => {
                    row.green += 1;
                    comparison.green.push(key);
                }
                (true, false) => {
                    row.red += 1;
                    comparison.red.push(key);
                }
                _ => {}
            }
        }
        comparison
    }

    /// The table: a row per sandbox, in the matrix's sandbox order, and the total.
    pub(super) fn table(&self) -> String {
        let mut text = String::from(
            "| sandbox | cells | succeed before | succeed after | turned green | turned red |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        let mut total = Row::default();
        for sandbox in Sandbox::ALL {
            let Some(row) = self.rows.get(sandbox) else {
                continue;
            };
            let _ = writeln!(
                text,
                "| {sandbox} | {} | {} | {} | {} | {} |",
                row.cells, row.before, row.after, row.green, row.red
            );
            total.cells += row.cells;
            total.before += row.before;
            total.after += row.after;
            total.green += row.green;
            total.red += row.red;
        }
        let _ = writeln!(
            text,
            "| **all** | {} | {} | {} | {} | {} |",
            total.cells, total.before, total.after, total.green, total.red
        );
        text
    }

    /// The cells that changed, one per line, under a heading each.
    pub(super) fn changes(&self) -> String {
        let mut text = String::new();
        for (title, keys) in [("Turned green", &self.green), ("Turned red", &self.red)] {
            if keys.is_empty() {
                continue;
            }
            let _ = writeln!(text, "\n{title} ({}):\n", keys.len());
            for key in keys {
                let _ = writeln!(text, "- `{key}`");
            }
        }
        if !self.skipped.is_empty() {
            text.push_str("\nNot run here:\n\n");
            for (sandbox, why) in &self.skipped {
                let _ = writeln!(text, "- `{sandbox}`: {why}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvfix_scenario::expect::{Expect, Outcome};
    use uvfix_scenario::{CacheState, ScenarioId};

    fn cell(build: &Build, sandbox: Sandbox, state: CacheState, ok: bool) -> CellResult {
        CellResult {
            uv_label: build.clone(),
            sandbox,
            scenario: ScenarioId::S1,
            state,
            expected: Expect::Fail,
            expected_why: String::new(),
            outcome: Outcome::ExpectedFail,
            exit_code: Some(if ok { 0 } else { 2 }),
            stdout: ScenarioId::S1.spec().stdout_line.to_string(),
            stderr: String::new(),
            canary: None,
            cache_diff: None,
            duration_ms: 0,
            timing: Default::default(),
            command: String::new(),
            root: None,
            state_proof: None,
            write_set: None,
            write_check: None,
            lock: None,
        }
    }

    #[test]
    fn counts_per_sandbox_and_names_the_changed_cells() {
        let before = Build::Revision("05055822b2".into());
        let after = Build::Revision("0dbeb4cd3d".into());
        let mut skipped = cell(&before, Sandbox::DockerReadOnly, CacheState::Warm, false);
        skipped.outcome = Outcome::Skip("no docker here".into());
        let results = vec![
            cell(&before, Sandbox::Landlock, CacheState::Warm, false),
            cell(&after, Sandbox::Landlock, CacheState::Warm, true),
            cell(&before, Sandbox::Landlock, CacheState::LockMissing, true),
            cell(&after, Sandbox::Landlock, CacheState::LockMissing, false),
            cell(&before, Sandbox::None, CacheState::Warm, true),
            cell(&after, Sandbox::None, CacheState::Warm, true),
            cell(&Build::Patched, Sandbox::None, CacheState::Warm, false),
            skipped.clone(),
            CellResult {
                uv_label: after.clone(),
                ..skipped
            },
        ];
        let comparison = Comparison::of(&results, &before, &after);
        let table = comparison.table();
        assert!(table.contains("| none | 1 | 1 | 1 | 0 | 0 |"), "{table}");
        assert!(
            table.contains("| landlock | 2 | 1 | 1 | 1 | 1 |"),
            "{table}"
        );
        assert!(table.contains("| **all** | 3 | 2 | 2 | 1 | 1 |"), "{table}");
        assert!(!table.contains("docker-ro"), "{table}");
        let changes = comparison.changes();
        assert!(
            changes.contains("Turned green (1):\n\n- `landlock/S1/warm`"),
            "{changes}"
        );
        assert!(
            changes.contains("Turned red (1):\n\n- `landlock/S1/lock-missing`"),
            "{changes}"
        );
        assert!(
            changes.contains("- `docker-ro`: no docker here"),
            "{changes}"
        );
    }
}
