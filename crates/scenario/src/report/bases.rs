//! Bases side by side (`cargo xtask matrix --all-bases`): one row per sandbox, one column per
//! base × build, and the check a new base has to pass: every cell the first base's patched
//! build passes, the other bases' patched builds pass too.

use std::fmt::Write as _;

use super::{Summary, ordered};
use crate::build::Build;
use crate::cell::CellResult;
use crate::expect::Outcome;

/// One base's matrix results (its `matrix.json`).
pub struct BaseResults {
    /// The uv release the base patches, `0.12.5`.
    pub base: String,
    pub results: Vec<CellResult>,
}

/// The Markdown table: a row per sandbox, a column per base × build, each cell its counts.
/// With one base, the columns are its builds.
pub fn render_bases(bases: &[BaseResults]) -> String {
    let columns: Vec<(&BaseResults, &Build)> = bases
        .iter()
        .flat_map(|b| {
            ordered(b.results.iter().map(|r| &r.uv_label))
                .into_iter()
                .map(move |build| (b, build))
        })
        .collect();
    let sandboxes = ordered(
        bases
            .iter()
            .flat_map(|b| b.results.iter().map(|r| r.sandbox)),
    );
    let mut out = String::from("| sandbox |");
    for (base, build) in &columns {
        // One base (the results page): its release is said once, not in every column.
        if bases.len() == 1 {
            let _ = write!(out, " {build} |");
        } else {
            let _ = write!(out, " {build} {} |", base.base);
        }
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for sandbox in sandboxes {
        let _ = write!(out, "| {} |", sandbox.name());
        for (base, build) in &columns {
            let cells: Vec<CellResult> = base
                .results
                .iter()
                .filter(|r| r.sandbox == sandbox && &r.uv_label == *build)
                .cloned()
                .collect();
            let _ = write!(out, " {} |", counts(&Summary::of(&cells)));
        }
        out.push('\n');
    }
    out
}

/// `63 pass, 9 xfail`: the non-zero counts, or `–` for no cells.
fn counts(s: &Summary) -> String {
    let parts: Vec<String> = [
        (s.pass, "pass"),
        (s.xfail, "xfail"),
        (s.fail, "**FAIL**"),
        (s.skip, "skip"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, word)| format!("{n} {word}"))
    .collect();
    if parts.is_empty() {
        "–".to_string()
    } else {
        parts.join(", ")
    }
}

/// The cells (`sandbox/scenario/state`) the first base's patched build passes and another
/// base's patched build ran without passing, as `<base>: <cell>: <outcome>`. A cell the
/// other base did not run (a sandbox skipped there) is not counted: its skip is reported with
/// that base's own results.
pub fn cells_lost_by_other_bases(bases: &[BaseResults]) -> Vec<String> {
    let Some((first, others)) = bases.split_first() else {
        return Vec::new();
    };
    let patched = |b: &BaseResults| -> Vec<CellResult> {
        b.results
            .iter()
            .filter(|r| r.uv_label == Build::Patched)
            .cloned()
            .collect()
    };
    let passed: Vec<CellResult> = patched(first)
        .into_iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .collect();
    let mut lost = Vec::new();
    for other in others {
        for cell in patched(other) {
            let was_passed = passed.iter().any(|p| {
                (p.sandbox, p.scenario, p.state) == (cell.sandbox, cell.scenario, cell.state)
            });
            if was_passed && !matches!(cell.outcome, Outcome::Pass | Outcome::Skip(_)) {
                lost.push(format!(
                    "{}: {}/{}/{}: {}",
                    other.base,
                    cell.sandbox,
                    cell.scenario,
                    cell.state,
                    cell.outcome.word()
                ));
            }
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::cell;
    use crate::scenario::ScenarioId;
    use crate::state::CacheState;
    use uvfix_sandbox::Sandbox;

    fn result(build: Build, sandbox: Sandbox, outcome: Outcome) -> CellResult {
        let (build, sandbox) = (build.to_string(), sandbox.name());
        cell(&build, sandbox, ScenarioId::S1, CacheState::Warm, outcome)
    }

    fn base(name: &str, results: Vec<CellResult>) -> BaseResults {
        BaseResults {
            base: name.into(),
            results,
        }
    }

    /// One patched landlock cell per base: a pass on 0.12.5, `on_new` on 0.13.6.
    fn patched_landlock_on_both(on_new: Outcome) -> [BaseResults; 2] {
        [
            base(
                "0.12.5",
                vec![result(Build::Patched, Sandbox::Landlock, Outcome::Pass)],
            ),
            base(
                "0.13.6",
                vec![result(Build::Patched, Sandbox::Landlock, on_new)],
            ),
        ]
    }

    #[test]
    fn bases_are_columns_and_a_lost_cell_is_named() {
        let old = base(
            "0.12.5",
            vec![
                result(Build::Patched, Sandbox::Landlock, Outcome::Pass),
                result(Build::Pristine, Sandbox::Landlock, Outcome::ExpectedFail),
            ],
        );
        let new = base(
            "0.13.6",
            vec![
                result(
                    Build::Patched,
                    Sandbox::Landlock,
                    Outcome::Fail("exit 2".into()),
                ),
                result(Build::Pristine, Sandbox::Landlock, Outcome::ExpectedFail),
            ],
        );
        insta::assert_snapshot!(render_bases(&[old, new]));
        let bases = patched_landlock_on_both(Outcome::ExpectedFail);
        assert_eq!(
            cells_lost_by_other_bases(&bases),
            ["0.13.6: landlock/S1/warm: xfail"]
        );
    }

    /// One base (the results page): its release is said once, not in every column.
    #[test]
    fn one_base_has_its_builds_as_columns() {
        let only = base(
            "0.12.5",
            vec![
                result(Build::Patched, Sandbox::Landlock, Outcome::Pass),
                result(Build::Pristine, Sandbox::Landlock, Outcome::ExpectedFail),
                result(Build::Patched, Sandbox::RoHome, Outcome::Skip("no".into())),
            ],
        );
        insta::assert_snapshot!(render_bases(&[only]));
    }

    #[test]
    fn a_skipped_or_passing_cell_is_not_lost() {
        let bases = patched_landlock_on_both(Outcome::Skip("no landlock".into()));
        assert!(cells_lost_by_other_bases(&bases).is_empty());
        assert!(cells_lost_by_other_bases(&bases[..1]).is_empty());
    }
}
