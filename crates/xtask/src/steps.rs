//! `cargo xtask matrix --steps`: the stack, validated one pull request at a time.
//!
//! Builds pristine and every prefix of the stack (step 1, steps 1–2, …, the whole stack),
//! runs the same cells with each, and reports for every step the cells it turns green. A step
//! that turns a cell red fails the run: upstream merges the steps one by one, so each prefix
//! must be at least as good as the one below it, and a writable cache must never notice.
//! What each step is expected to turn green is data ([`uvfix_scenario::stack`]); a step that
//! turns green more or less than that fails the run too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Serialize;
use uvfix_pipeline::builder::{self, Variant};
use uvfix_pipeline::{Manifest, Paths};
use uvfix_sandbox::Sandbox;
use uvfix_scenario::Build;
use uvfix_scenario::cell::{CellResult, UvUnderTest};
use uvfix_scenario::compare::{Key, succeeded};
use uvfix_scenario::plan::{self, Filter};
use uvfix_scenario::{pool, stack};

use crate::explicit::Explicit;

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
pub fn changes(manifest: &Manifest, table: &BTreeMap<Key, Vec<Option<bool>>>) -> Vec<StepChange> {
    manifest
        .steps
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
fn render_summary(manifest: &Manifest, changes: &[StepChange]) -> String {
    let mut out = String::from(
        "# The stack, step by step\n\n\
         | # | step | status | turns green | turns red | not as the data says |\n\
         |---|---|---|---:|---:|---:|\n",
    );
    for (step, change) in manifest.steps.iter().zip(changes) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            step.number,
            step.id,
            match step.status {
                uvfix_pipeline::manifest::Status::Proposed => "proposed",
                uvfix_pipeline::manifest::Status::Optional => "optional",
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
fn render_tiers(manifest: &Manifest, table: &BTreeMap<Key, Vec<Option<bool>>>) -> String {
    use uvfix_pipeline::manifest::Status;
    let Some(proposed) = manifest
        .steps
        .iter()
        .filter(|step| step.status == Status::Proposed)
        .map(|step| step.number)
        .max()
    else {
        return String::new();
    };
    let whole = manifest.steps.len();
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

/// Build every prefix, run the cells with each, report and check the steps.
/// Pristine, every prefix of the stack and the whole stack, as builds under test. A build
/// already in `UVFIX_UV_<VARIANT>` (`UVFIX_UV_STEP_3`, …) is used as it is, as `cargo xtask
/// build` does; the rest are built.
fn builds_under_test(paths: &Paths, manifest: &Manifest) -> anyhow::Result<Vec<UvUnderTest>> {
    let variants = Variant::stack(manifest);
    let given: Vec<Option<PathBuf>> = variants
        .iter()
        .map(|v| std::env::var_os(builder::env_var(*v)).map(PathBuf::from))
        .collect();
    let missing: Vec<Variant> = variants
        .iter()
        .zip(&given)
        .filter(|(_, g)| g.is_none())
        .map(|(v, _)| *v)
        .collect();
    let mut built = builder::ensure(paths, &missing)?.into_iter().map(|b| b.uv);
    let of = manifest.steps.len();
    Ok(variants
        .iter()
        .zip(given)
        .map(|(variant, given)| {
            let build = match *variant {
                Variant::Pristine => Build::Pristine,
                Variant::Patched => Build::Patched,
                Variant::Step(applied) => Build::Step { applied, of },
            };
            let uv = given.unwrap_or_else(|| built.next().expect("one build per missing one"));
            UvUnderTest::new(build, uv)
        })
        .collect())
}

/// Write steps.md, steps.json and steps/<id>.md; returns the summary.
fn write_reports(
    manifest: &Manifest,
    changes: &[StepChange],
    table: &BTreeMap<Key, Vec<Option<bool>>>,
    out: &Path,
) -> anyhow::Result<String> {
    let dir: PathBuf = out.join("steps");
    fs_err::create_dir_all(&dir)?;
    let summary = render_summary(manifest, changes) + &render_tiers(manifest, table);
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

pub fn run(
    paths: &Paths,
    filter: &Filter,
    jobs: usize,
    out: &Path,
    helper: &Path,
    explicit: &Explicit,
) -> anyhow::Result<()> {
    let manifest = Manifest::load(&paths.patches())?;
    let ids: Vec<&str> = manifest.steps.iter().map(|s| s.id.as_str()).collect();
    if let Err(err) = stack::check_stack(&ids) {
        bail!("{err}; update crates/scenario/src/stack.rs");
    }
    let uvs = builds_under_test(paths, &manifest)?;
    let builds: Vec<Build> = uvs.iter().map(|uv| uv.build.clone()).collect();
    let pristine = builder::given(Variant::Pristine);
    let (results, cost) = pool::run_cells(
        &plan::cells(&uvs, filter),
        jobs,
        helper,
        false,
        pristine.as_deref(),
    )?;
    println!("{}", cost.line());

    let table = by_cell(&results, &builds);
    let changes = changes(&manifest, &table);
    let summary = write_reports(&manifest, &changes, &table, out)?;
    // Every cell of every build too (matrix.json, matrix.md, junit.xml), so the directory never
    // holds another run's cells beside this run's steps: a stale matrix.json there once showed
    // a column as skipped that this run had passed.
    uvfix_scenario::report::write_reports(&results, out)?;
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
    use uvfix_scenario::{CacheState, ScenarioId};

    fn manifest(statuses: &[&str]) -> Manifest {
        let mut text = String::from(
            "[uv]\nversion = \"0.12.5\"\nchecksum = \"00\"\n[[crate]]\nname = \"uv\"\nversion = \"0.12.5\"\n",
        );
        for (id, status) in ["a", "b", "c"].iter().zip(statuses) {
            text.push_str(&format!(
                "[[step]]\nid = \"{id}\"\npatch = \"stack/{id}.patch\"\nstatus = \"{status}\"\nclaim = \"c\"\n"
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join(Manifest::FILE), text).unwrap();
        Manifest::load_to_forward(dir.path()).unwrap()
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
        let manifest = manifest(&["proposed", "proposed", "optional"]);
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
        insta::assert_snapshot!(render_tiers(&manifest, &table));
    }

    #[test]
    fn no_tiers_without_a_proposed_step() {
        let manifest = manifest(&["optional"]);
        assert_eq!(render_tiers(&manifest, &BTreeMap::new()), "");
    }
}
