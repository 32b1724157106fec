//! `cargo xtask matrix --steps`: the stack, validated one pull request at a time.
//!
//! The same cells run with pristine and every prefix of the stack (step 1, steps 1–2, …, the
//! whole stack); this compares each prefix with the one below it and reports for every step
//! the cells it turns green. A step that turns a cell red fails the run: upstream merges the
//! steps one by one, so each prefix must be at least as good as the one below it, and a
//! writable cache must never notice. What each step is expected to turn green is data
//! ([`crate::stack`]); a step that turns green more or less than that fails the run too.
//!
//! The builds come from the caller (`cargo xtask` builds them with the pipeline), so this
//! crate stays free of the build side.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::bail;
use serde::Serialize;
use uvfix_sandbox::Sandbox;

use crate::Build;
use crate::cell::{CellResult, UvUnderTest};
use crate::compare::{Key, succeeded};
use crate::explicit::Explicit;
use crate::plan::{self, Filter};
use crate::{pool, stack};

/// A step of the stack, as much of `patches/series.toml`'s `[[step]]` as the comparison needs.
#[derive(Debug, Clone)]
pub struct StackStep {
    /// 1 for the first step.
    pub number: usize,
    /// The id [`crate::stack`] names the step by.
    pub id: String,
    /// In the proposed tier (`status = "proposed"`), not the design tier (`optional`).
    pub proposed: bool,
}

/// What one step did to the cells.
#[derive(Debug, Default, Serialize)]
pub struct StepChange {
    pub number: usize,
    pub id: String,
    /// Failed with the steps below, succeed with this one.
    pub green: Vec<Key>,
    /// Succeeded with the steps below, fail with this one: never acceptable.
    pub red: Vec<Key>,
    /// The data says this step turns them green, and it did not.
    pub missing: Vec<Key>,
    /// It turned them green, and the data says another step should.
    pub unexpected: Vec<Key>,
}

/// Per cell, per build (pristine, step 1, …, the whole stack): did uv succeed.
fn by_cell(results: &[CellResult], builds: &[Build]) -> BTreeMap<Key, Vec<Option<bool>>> {
    let mut table: BTreeMap<Key, Vec<Option<bool>>> = BTreeMap::new();
    for result in results {
        let Some(build) = builds.iter().position(|b| *b == result.uv_label) else {
            continue;
        };
        let key = Key {
            sandbox: result.sandbox,
            scenario: result.scenario,
            state: result.state,
        };
        table.entry(key).or_insert_with(|| vec![None; builds.len()])[build] = succeeded(result);
    }
    table
}

/// Compare consecutive builds, and each step with what the data says it turns green.
pub fn changes(steps: &[StackStep], table: &BTreeMap<Key, Vec<Option<bool>>>) -> Vec<StepChange> {
    steps
        .iter()
        .map(|step| {
            let mut change = StepChange {
                number: step.number,
                id: step.id.clone(),
                ..StepChange::default()
            };
            for (key, runs) in table {
                let (Some(before), Some(after)) = (runs[step.number - 1], runs[step.number]) else {
                    continue;
                };
                let expected = stack::turns_green(key.sandbox, key.scenario, key.state)
                    == Some(step.id.as_str());
                match (before, after) {
                    (false, true) => {
                        change.green.push(*key);
                        if !expected {
                            change.unexpected.push(*key);
                        }
                    }
                    (true, false) => change.red.push(*key),
                    (false, false) if expected => change.missing.push(*key),
                    _ => {}
                }
            }
            change
        })
        .collect()
}

/// `steps.md`: one row per step.
fn render_summary(steps: &[StackStep], changes: &[StepChange]) -> String {
    let mut out = String::from(
        "# The stack, step by step\n\n\
         | # | step | status | turns green | turns red | not as the data says |\n\
         |---|---|---|---:|---:|---:|\n",
    );
    for (step, change) in steps.iter().zip(changes) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            step.number,
            step.id,
            if step.proposed {
                "proposed"
            } else {
                "optional"
            },
            change.green.len(),
            change.red.len(),
            change.missing.len() + change.unexpected.len()
        );
    }
    out
}

/// What upstream gets from each tier, per sandbox: the cells that succeed with pristine, after
/// the last `proposed` step (what upstream gets if it declines every design step) and with the
/// whole stack. Empty where the stack has no `proposed` step.
fn render_tiers(steps: &[StackStep], table: &BTreeMap<Key, Vec<Option<bool>>>) -> String {
    let Some(proposed) = steps
        .iter()
        .filter(|step| step.proposed)
        .map(|step| step.number)
        .max()
    else {
        return String::new();
    };
    let whole = steps.len();
    // Markdown: a line indented by four spaces is a code block, so no line here is.
    let mut out = format!(
        "\n## The two tiers\n\n\
         The proposed tier is steps 1–{proposed}; the design tier the rest. Cells that \
         succeed:\n\n\
         | sandbox | cells | pristine | proposed tier | whole stack | the design tier adds |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    let mut totals = [0usize; 5];
    for &sandbox in Sandbox::ALL {
        let runs: Vec<&Vec<Option<bool>>> = table
            .iter()
            .filter(|(key, runs)| key.sandbox == sandbox && runs[0].is_some())
            .map(|(_, runs)| runs)
            .collect();
        if runs.is_empty() {
            continue;
        }
        let at = |build: usize| runs.iter().filter(|r| r[build] == Some(true)).count();
        let row = [
            runs.len(),
            at(0),
            at(proposed),
            at(whole),
            at(whole).saturating_sub(at(proposed)),
        ];
        for (total, n) in totals.iter_mut().zip(row) {
            *total += n;
        }
        let _ = writeln!(
            out,
            "| {sandbox} | {} | {} | {} | {} | {} |",
            row[0], row[1], row[2], row[3], row[4]
        );
    }
    let _ = writeln!(
        out,
        "| all | {} | {} | {} | {} | {} |",
        totals[0], totals[1], totals[2], totals[3], totals[4]
    );
    out
}

/// `steps/<id>.md`: per sandbox, the cells that succeed without the step and with it, and
/// the cells it turns green.
fn render_step(change: &StepChange, table: &BTreeMap<Key, Vec<Option<bool>>>) -> String {
    let mut out = String::from(
        "| sandbox | cells | succeed without | succeed with | turned green |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for &sandbox in Sandbox::ALL {
        let runs: Vec<(Option<bool>, Option<bool>)> = table
            .iter()
            .filter(|(key, _)| key.sandbox == sandbox)
            .map(|(_, runs)| (runs[change.number - 1], runs[change.number]))
            .filter(|(before, after)| before.is_some() && after.is_some())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let count = |pick: fn(&(Option<bool>, Option<bool>)) -> bool| {
            runs.iter().filter(|r| pick(r)).count()
        };
        let _ = writeln!(
            out,
            "| {sandbox} | {} | {} | {} | {} |",
            runs.len(),
            count(|r| r.0 == Some(true)),
            count(|r| r.1 == Some(true)),
            count(|r| r.0 == Some(false) && r.1 == Some(true)),
        );
    }
    if !change.green.is_empty() {
        out.push_str("\nTurned green:\n\n");
        for key in &change.green {
            let _ = writeln!(out, "- `{key}`");
        }
    }
    for (title, keys) in [
        ("Turned red (a regression)", &change.red),
        ("Expected to turn green, did not", &change.missing),
        (
            "Turned green, expected from another step",
            &change.unexpected,
        ),
    ] {
        if !keys.is_empty() {
            let _ = writeln!(out, "\n{title}:\n");
            for key in keys {
                let _ = writeln!(out, "- `{key}`");
            }
        }
    }
    out
}

/// Write steps.md, steps.json and steps/<id>.md; returns the summary.
fn write_reports(
    steps: &[StackStep],
    changes: &[StepChange],
    table: &BTreeMap<Key, Vec<Option<bool>>>,
    out: &Path,
) -> anyhow::Result<String> {
    let dir = out.join("steps");
    fs_err::create_dir_all(&dir)?;
    let summary = render_summary(steps, changes) + &render_tiers(steps, table);
    fs_err::write(out.join("steps.md"), &summary)?;
    fs_err::write(
        out.join("steps.json"),
        serde_json::to_string_pretty(changes)?,
    )?;
    for change in changes {
        fs_err::write(
            dir.join(format!("{}.md", change.id)),
            render_step(change, table),
        )?;
    }
    Ok(summary)
}

/// Every cell change the per-step data did not predict, in words.
fn disagreements(changes: &[StepChange]) -> Vec<String> {
    changes
        .iter()
        .flat_map(|c| {
            let name = |what: &'static str| move |key: &Key| format!("step {} {what}: {key}", c.id);
            c.red
                .iter()
                .map(name("turned red"))
                .chain(c.missing.iter().map(name("did not turn green")))
                .chain(c.unexpected.iter().map(name("turned green unexpectedly")))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The stack's steps must be the ones [`stack`] names: checked before anything is built.
pub fn check_stack(steps: &[StackStep]) -> anyhow::Result<()> {
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    if let Err(err) = stack::check_stack(&ids) {
        bail!("{err}; update crates/scenario/src/stack.rs");
    }
    Ok(())
}

/// Where and how the cells run: what [`pool::run_cells`] takes besides the cells.
pub struct Running<'a> {
    pub jobs: usize,
    pub helper: &'a Path,
    /// A pristine uv given from outside (`$UVFIX_UV_PRISTINE`), for the write-set references.
    pub pristine: Option<&'a Path>,
}

/// Run the cells with every build of `uvs` (pristine, then each prefix of `steps`, in order),
/// report and check the steps: write the reports to `out`, print the summary, and fail on a
/// cell change the per-step data does not predict, or an explicit request that ran nothing.
pub fn run(
    steps: &[StackStep],
    uvs: &[UvUnderTest],
    filter: &Filter,
    running: &Running<'_>,
    out: &Path,
    explicit: &Explicit,
) -> anyhow::Result<()> {
    check_stack(steps)?;
    let builds: Vec<Build> = uvs.iter().map(|uv| uv.build.clone()).collect();
    let (results, cost) = pool::run_cells(
        &plan::cells(uvs, filter),
        running.jobs,
        running.helper,
        false,
        running.pristine,
    )?;
    println!("{}", cost.line());

    let table = by_cell(&results, &builds);
    let changes = changes(steps, &table);
    let summary = write_reports(steps, &changes, &table, out)?;
    // Every cell of every build too (matrix.json, matrix.md, junit.xml), so the directory never
    // holds another run's cells beside this run's steps: a stale matrix.json there once showed
    // a column as skipped that this run had passed.
    crate::report::write_reports(&results, out)?;
    print!("{summary}");
    eprintln!(
        "uvfix: per-step reports in {} (steps.md, steps/<id>.md, steps.json; every cell in \
         matrix.json, matrix.md, junit.xml)",
        out.display()
    );
    let wrong = disagreements(&changes);
    if !wrong.is_empty() {
        bail!(
            "{} cell change(s) against the per-step data:\n  {}",
            wrong.len(),
            wrong.join("\n  ")
        );
    }
    explicit.check_ran(&results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::StepRow;
    use crate::{CacheState, ScenarioId};

    /// Steps `a`, `b`, … of the given tiers (`true`: proposed).
    fn stack(proposed: &[bool]) -> Vec<StackStep> {
        ["a", "b", "c"]
            .iter()
            .zip(proposed)
            .enumerate()
            .map(|(at, (id, &proposed))| StackStep {
                number: at + 1,
                id: id.to_string(),
                proposed,
            })
            .collect()
    }

    fn key(sandbox: Sandbox, scenario: ScenarioId) -> Key {
        Key {
            sandbox,
            scenario,
            state: CacheState::Warm,
        }
    }

    /// The tier table counts what succeeds after the last proposed step and with the whole
    /// stack, sandbox by sandbox.
    #[test]
    fn tiers_split_at_the_last_proposed_step() {
        let table = BTreeMap::from([
            // Green at step 2 (proposed), green at step 3 (design), never green.
            (
                key(Sandbox::Landlock, ScenarioId::S1),
                vec![Some(false), Some(false), Some(true), Some(true)],
            ),
            (
                key(Sandbox::Landlock, ScenarioId::S5),
                vec![Some(false), Some(false), Some(false), Some(true)],
            ),
            (
                key(Sandbox::RoRoot, ScenarioId::S5),
                vec![Some(false), Some(false), Some(false), Some(false)],
            ),
        ]);
        insta::assert_snapshot!(render_tiers(&stack(&[true, true, false]), &table));
    }

    #[test]
    fn no_tiers_without_a_proposed_step() {
        assert_eq!(render_tiers(&stack(&[false]), &BTreeMap::new()), "");
    }

    /// `steps.json` is written from [`StepChange`] and read by the results page's [`StepRow`]:
    /// the two must agree, or the results page would stop at a report every run writes.
    #[test]
    fn steps_json_as_written_is_read() {
        let key = key(Sandbox::Landlock, ScenarioId::S1);
        let change = StepChange {
            number: 2,
            id: "shared-locks".into(),
            green: vec![key],
            unexpected: vec![key],
            ..StepChange::default()
        };
        let rows: Vec<StepRow> =
            serde_json::from_str(&serde_json::to_string_pretty(&[change]).unwrap()).unwrap();
        assert_eq!(
            rows,
            [StepRow {
                number: 2,
                id: "shared-locks".into(),
                green: vec!["landlock/S1/warm".into()],
                red: vec![],
                missing: vec![],
                unexpected: vec!["landlock/S1/warm".into()],
            }]
        );
    }
}
