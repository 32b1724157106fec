//! `cargo xtask upstream check --tests`: upstream's own integration tests ([`suite::AREAS`])
//! against the release and each step of the stack, in an astral-sh/uv checkout.
//!
//! The release comes first: it is the baseline. A test that fails at a step and passed on the
//! release is a regression of that step, as is a test the stack adds that fails; a test that
//! fails on the release as well could not run here and is listed with its reason. The report
//! goes to `target/uvfix/upstream/check/tests.{md,json}`. What each step did per test target
//! is also kept across runs ([`records`]), and `upstream export` quotes a step's records in
//! that step's PR description.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;
use uvfix_pipeline::Paths;

use super::checkout::Checkout;
use super::records::{self, Key, Record, Records};
use super::suite::{self, Area, Outcome, Runner};
use super::toolchain::Toolchain;
use super::workdir::{self, display, fresh_dir};

/// What `upstream check --tests` asked for.
pub(crate) struct Request {
    /// On the release and after every step, not only on the whole stack.
    pub steps: bool,
    /// With `steps`: only these step ids.
    pub only_steps: Vec<String>,
    /// The stack first, then the release on only what failed with it.
    pub release_reruns_failures: bool,
    /// Interpreter directories for the tests' `PATH`.
    pub pythons: Vec<PathBuf>,
    /// Test targets ([`suite::AREAS`] names); all when empty.
    pub areas: Vec<String>,
}

/// One column of the report: the release (`count` 0) or a step of the stack.
#[derive(Serialize)]
pub(crate) struct StepRun {
    /// `0.12.5` or the step's id.
    pub name: String,
    /// How many patches are applied.
    pub count: usize,
    /// Area (test target) → what its tests did.
    pub areas: BTreeMap<String, Outcome>,
    /// The release ran only the tests that failed with the stack
    /// (`--release-reruns-failures`).
    pub failures_only: bool,
}

/// A step's verdict against the release.
#[derive(Default, Serialize)]
pub(crate) struct Verdict {
    pub passed: usize,
    pub ignored: usize,
    /// Failed here, passed on the release (or added by the stack).
    pub regressions: Vec<String>,
    /// Failed on the release and here: could not run on this machine.
    pub unrunnable: usize,
    /// Failed on the release, pass here.
    pub fixed: Vec<String>,
    /// Failed here, the release not run yet (`--release-reruns-failures`, mid-run).
    pub unjudged: usize,
}

pub(crate) fn run(
    paths: &Paths,
    checkout: &Checkout,
    toolchain: &Toolchain,
    options: &Request,
) -> Result<()> {
    let out = workdir::dir(paths).join("check");
    let logs = out.join("logs");
    fresh_dir(&logs)?;
    let areas = suite::select(&options.areas)?;
    let pythons = interpreters(paths, &options.pythons)?;
    let runner = Runner::new(&checkout.tree, &pythons)?;
    let last = checkout.exported.len();
    let mut counts: Vec<usize> = if options.steps {
        let ids: Vec<&str> = checkout.exported.iter().map(|p| p.step.as_str()).collect();
        chosen_steps(&ids, &options.only_steps)?
    } else {
        vec![last]
    };
    let keys = step_keys(checkout)?;
    let release_last = options.release_reruns_failures;
    counts.insert(if release_last { counts.len() } else { 0 }, 0);
    let mut runs: Vec<StepRun> = Vec::new();
    for count in counts {
        let name = checkout.step_name(count);
        // The release after the stack: only what failed with it, by area.
        let only = (count == 0 && release_last).then(|| failed_with_the_stack(&runs));
        if only.as_ref().is_some_and(BTreeMap::is_empty) {
            println!("uvfix: no upstream test failed with the stack: the release is not run");
            break;
        }
        println!("uvfix: upstream's integration tests at {name} ({count} patch(es))");
        checkout.at_step(paths, count)?;
        // uv's own profile without debug info, when the checkout has it: linking the five
        // test binaries is most of a step's build, and debug info most of what they link.
        let profile = defines_profile(&checkout.tree, "no-debug").then_some("no-debug");
        let binaries = suite::build(checkout.cargo(paths, toolchain, &[]), &areas, profile)?;
        let step = StepTests {
            runner: &runner,
            binaries: &binaries,
            logs: &logs,
            count,
            only: only.as_ref(),
        };
        let outcomes = step.run_areas(paths, &areas)?;
        runs.push(StepRun {
            name,
            count,
            areas: outcomes,
            failures_only: only.is_some(),
        });
        runs.sort_by_key(|run| run.count);
        // After every step, so an interrupted run still leaves what it measured.
        report(paths, &out, &runs, &areas, &pythons)?;
        let grid = record(&out, &runs, checkout, &keys)?;
        println!(
            "uvfix: every step's records so far in {}",
            display(paths, &grid)
        );
    }
    finish(&runs)
}

/// One step's test binaries, and what to run of them.
struct StepTests<'a> {
    runner: &'a Runner,
    binaries: &'a BTreeMap<String, PathBuf>,
    logs: &'a Path,
    count: usize,
    /// The release after the stack: only these tests, by area.
    only: Option<&'a BTreeMap<String, Vec<String>>>,
}

impl StepTests<'_> {
    fn run_areas(&self, paths: &Paths, areas: &[&Area]) -> Result<BTreeMap<String, Outcome>> {
        let mut outcomes = BTreeMap::new();
        for area in areas {
            let Some(exe) = self.binaries.get(area.target) else {
                bail!("cargo built no `{}` test binary", area.target);
            };
            let names: Option<Vec<&str>> = self.only.map(|only| {
                only.get(area.target)
                    .map(|names| names.iter().map(String::as_str).collect())
                    .unwrap_or_default()
            });
            if names.as_ref().is_some_and(Vec::is_empty) {
                println!(
                    "  {:<12} no test failed with the stack: not run",
                    area.target
                );
                outcomes.insert(area.target.to_string(), Outcome::default());
                continue;
            }
            let log = self
                .logs
                .join(format!("{:02}-{}.log", self.count, area.target));
            let outcome = self.runner.run(exe, area, names.as_deref(), &log)?;
            println!(
                "  {:<12} {:>5} passed {:>4} failed {:>4} ignored  ({} s, log {})",
                area.target,
                outcome.passed.len(),
                outcome.failed.len(),
                outcome.ignored,
                outcome.seconds,
                display(paths, &log)
            );
            outcomes.insert(area.target.to_string(), outcome);
        }
        Ok(outcomes)
    }
}

/// The patch counts (1-based) of the steps to run: every one, or those named.
pub(crate) fn chosen_steps(ids: &[&str], only: &[String]) -> Result<Vec<usize>> {
    if let Some(unknown) = only.iter().find(|id| !ids.contains(&id.as_str())) {
        bail!(
            "--step {unknown}: no such step in the stack (its steps: {})",
            ids.join(", ")
        );
    }
    Ok((1..=ids.len())
        .filter(|&n| only.is_empty() || only.iter().any(|id| id == ids[n - 1]))
        .collect())
}

/// Area → the tests that failed at any step run so far.
fn failed_with_the_stack(runs: &[StepRun]) -> BTreeMap<String, Vec<String>> {
    let mut failed: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for run in runs.iter().filter(|run| run.count > 0) {
        for (area, outcome) in &run.areas {
            failed
                .entry(area.clone())
                .or_default()
                .extend(outcome.failed.keys().cloned());
        }
    }
    failed
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(area, names)| (area, names.into_iter().collect()))
        .collect()
}

pub(crate) fn defines_profile(tree: &Path, name: &str) -> bool {
    fs_err::read_to_string(tree.join("Cargo.toml"))
        .ok()
        .and_then(|text| toml::from_str::<toml::Value>(&text).ok())
        .is_some_and(|value| value.get("profile").and_then(|p| p.get(name)).is_some())
}

/// The interpreter directories for the tests' `PATH`: the ones given, else the copies
/// `ci/upstream-pythons.sh` made under `target/uvfix/upstream/pythons/`.
pub(crate) fn interpreters(paths: &Paths, given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given
            .iter()
            .map(std::path::absolute)
            .collect::<Result<_, _>>()?);
    }
    let dir = workdir::dir(paths).join("pythons");
    let mut found: Vec<PathBuf> = match fs_err::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.is_dir())
            .collect(),
        Err(_) => Vec::new(),
    };
    // Newest first: a bare `python3` on `PATH` is then the newest copy.
    found.sort_by_key(|bin| std::cmp::Reverse(version_of(bin)));
    if found.is_empty() {
        println!(
            "uvfix: no interpreters in {} (ci/upstream-pythons.sh copies them there); tests \
             that pin a version not on PATH will fail on the release too and be listed as \
             not runnable here",
            display(paths, &dir)
        );
    }
    Ok(found)
}

/// `…/3.12.1/bin` → `[3, 12, 1]`.
fn version_of(bin: &Path) -> Vec<u64> {
    bin.parent()
        .and_then(Path::file_name)
        .map(|name| {
            name.to_string_lossy()
                .split('.')
                .map_while(|part| part.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The release's run, once it ran.
fn release(runs: &[StepRun]) -> Option<&StepRun> {
    runs.iter().find(|run| run.count == 0)
}

/// Each step against the release.
pub(crate) fn verdicts(runs: &[StepRun]) -> Vec<Verdict> {
    let base = release(runs);
    runs.iter()
        .map(|run| {
            let mut verdict = Verdict::default();
            for (area, outcome) in &run.areas {
                judge(&mut verdict, base, area, outcome);
            }
            verdict
        })
        .collect()
}

/// Add one test target's outcome at a step, judged against the release, to `verdict`.
fn judge(verdict: &mut Verdict, base: Option<&StepRun>, area: &str, outcome: &Outcome) {
    let before = base.and_then(|base| base.areas.get(area));
    verdict.passed += outcome.passed.len();
    verdict.ignored += outcome.ignored;
    for name in outcome.failed.keys() {
        if base.is_none() {
            verdict.unjudged += 1;
        } else if before.is_some_and(|b| b.failed.contains_key(name)) {
            verdict.unrunnable += 1;
        } else {
            verdict.regressions.push(format!("{area}: {name}"));
        }
    }
    for name in &outcome.passed {
        if before.is_some_and(|b| b.failed.contains_key(name)) {
            verdict.fixed.push(format!("{area}: {name}"));
        }
    }
}

/// Each step's key: the checkout and the sha256 of every exported patch up to it.
fn step_keys(checkout: &Checkout) -> Result<Vec<Key>> {
    let mut patches = Vec::new();
    let mut keys = Vec::new();
    for patch in &checkout.exported {
        patches.push(uvfix_pipeline::sha256_file(&patch.file)?);
        keys.push(Key {
            checkout: checkout.label.clone(),
            patches: patches.clone(),
        });
    }
    Ok(keys)
}

/// Keep what this run judged ([`records`]), then write each step's part of its PR
/// description (`tests/<step>.md`) and the grid (`records/steps.md`) from every current
/// record, this run's and earlier ones'.
fn record(out: &Path, runs: &[StepRun], checkout: &Checkout, keys: &[Key]) -> Result<PathBuf> {
    let store = Records::new(out);
    let base = release(runs);
    let ran = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    for run in runs.iter().filter(|run| run.count > 0) {
        for (area, outcome) in &run.areas {
            let mut verdict = Verdict::default();
            judge(&mut verdict, base, area, outcome);
            let fixed = base
                .filter(|base| !base.failures_only)
                .map(|_| verdict.fixed);
            let record = Record {
                key: keys[run.count - 1].clone(),
                target: area.clone(),
                passed: verdict.passed,
                ignored: verdict.ignored,
                unrunnable: verdict.unrunnable,
                regressions: verdict.regressions,
                fixed,
                unjudged: verdict.unjudged,
                ran: ran.clone(),
            };
            store.write(&run.name, &record)?;
        }
    }
    let per_step = out.join("tests");
    fresh_dir(&per_step)?;
    let mut grid = Vec::new();
    for (patch, key) in checkout.exported.iter().zip(keys) {
        let current = store.current(&patch.step, key)?;
        if !current.is_empty() {
            fs_err::write(
                per_step.join(format!("{}.md", patch.step)),
                records::step_markdown(&checkout.label, &current),
            )?;
        }
        grid.push((patch.step.clone(), current));
    }
    let targets: Vec<&str> = suite::AREAS.iter().map(|area| area.target).collect();
    let path = out.join("records").join("steps.md");
    fs_err::create_dir_all(out.join("records"))?;
    fs_err::write(
        &path,
        records::grid_markdown(&checkout.label, &grid, &targets),
    )?;
    Ok(path)
}

/// Write `tests.md` and `tests.json`, print the table; fail on any regression.
fn report(
    paths: &Paths,
    out: &Path,
    runs: &[StepRun],
    areas: &[&Area],
    pythons: &[PathBuf],
) -> Result<()> {
    let verdicts = verdicts(runs);
    let markdown = markdown(runs, &verdicts, areas, pythons);
    fs_err::write(out.join("tests.md"), &markdown)?;
    let json = serde_json::json!({ "runs": runs, "verdicts": verdicts });
    fs_err::write(out.join("tests.json"), serde_json::to_string_pretty(&json)?)?;
    println!("{markdown}");
    println!("uvfix: report in {}", display(paths, &out.join("tests.md")));
    Ok(())
}

/// Fail if any step broke a test that passes on the release.
fn finish(runs: &[StepRun]) -> Result<()> {
    let verdicts = verdicts(runs);
    let regressions: Vec<String> = runs
        .iter()
        .zip(&verdicts)
        .flat_map(|(run, v)| {
            v.regressions
                .iter()
                .map(move |r| format!("{}: {r}", run.name))
        })
        .collect();
    if !regressions.is_empty() {
        bail!(
            "{} upstream test(s) fail at a step but pass on the release:\n  {}",
            regressions.len(),
            regressions.join("\n  ")
        );
    }
    Ok(())
}

fn markdown(
    runs: &[StepRun],
    verdicts: &[Verdict],
    areas: &[&Area],
    pythons: &[PathBuf],
) -> String {
    let mut text = String::from(
        "| step | passed | ignored | failed, not runnable here | regressions | fixed |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let base = release(runs);
    for (run, v) in runs.iter().zip(verdicts) {
        let name = match run.failures_only {
            true => format!("{} (only what failed with the stack)", run.name),
            false => run.name.clone(),
        };
        let regressions = match base {
            None => format!("{} not judged yet", v.unjudged),
            Some(_) => v.regressions.len().to_string(),
        };
        let fixed = match base {
            Some(base) if base.failures_only => "not measured".to_string(),
            _ => v.fixed.len().to_string(),
        };
        let _ = writeln!(
            text,
            "| {name} | {} | {} | {} | {regressions} | {fixed} |",
            v.passed, v.ignored, v.unrunnable,
        );
    }
    let areas: Vec<String> = areas
        .iter()
        .map(|a| match a.filters {
            [] => format!("`{}`", a.target),
            filters => format!("`{}` ({})", a.target, filters.join(", ")),
        })
        .collect();
    let _ = writeln!(
        text,
        "\nTest targets: {}; features `{}`; interpreters: {}.",
        areas.join(", "),
        suite::FEATURES,
        match pythons {
            [] => "PATH".to_string(),
            p => p
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    );
    if let Some(base) = base {
        let _ = writeln!(
            text,
            "\nNot runnable here (fail on {} without the stack too):\n",
            base.name
        );
        for (area, outcome) in &base.areas {
            for (name, reason) in &outcome.failed {
                let _ = writeln!(text, "- `{area}: {name}`: {reason}");
            }
        }
    }
    for (run, v) in runs
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| !v.regressions.is_empty())
    {
        let _ = writeln!(text, "\nRegressions at {}:\n", run.name);
        for name in &v.regressions {
            let _ = writeln!(text, "- `{name}`");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_chosen_by_id_in_stack_order() {
        let ids = ["markers", "shared-locks", "missing-lock"];
        let only = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(chosen_steps(&ids, &[]).unwrap(), [1, 2, 3]);
        assert_eq!(
            chosen_steps(&ids, &only(&["missing-lock", "markers"])).unwrap(),
            [1, 3]
        );
        let err = chosen_steps(&ids, &only(&["marker"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--step marker") && err.contains("markers, shared-locks"),
            "{err}"
        );
    }

    fn run(name: &str, passed: &[&str], failed: &[&str]) -> StepRun {
        let outcome = Outcome {
            passed: passed.iter().map(|s| s.to_string()).collect(),
            failed: failed
                .iter()
                .map(|s| (s.to_string(), "why".to_string()))
                .collect(),
            ..Outcome::default()
        };
        StepRun {
            name: name.into(),
            count: usize::from(name != "0.12.5"),
            areas: BTreeMap::from([("build".to_string(), outcome)]),
            failures_only: false,
        }
    }

    fn checkout(dir: &Path, steps: &[(&str, &str)]) -> Checkout {
        let exported = steps
            .iter()
            .enumerate()
            .map(|(index, (step, text))| {
                let file = dir.join(format!("{step}.patch"));
                fs_err::write(&file, text).unwrap();
                super::super::export::ExportedPatch {
                    entry: PathBuf::new(),
                    step: step.to_string(),
                    number: index + 1,
                    status: uvfix_pipeline::manifest::Status::Proposed,
                    claim: String::new(),
                    crates: Vec::new(),
                    subject: String::new(),
                    body: String::new(),
                    file,
                    files: 1,
                    added: 1,
                    removed: 0,
                    manifest_changes_lost: Vec::new(),
                }
            })
            .collect();
        Checkout {
            source: PathBuf::new(),
            sha: "210d1f6785e9".into(),
            label: "0.12.5 (210d1f6785e9)".into(),
            tree: PathBuf::new(),
            exported,
        }
    }

    #[test]
    fn runs_in_parts_add_up_per_step_until_a_patch_changes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("check");
        let co = checkout(dir.path(), &[("markers", "one"), ("shared-locks", "two")]);
        let keys = step_keys(&co).unwrap();
        let with_area = |mut run: StepRun, area: &str| {
            let outcome = run.areas.remove("build").unwrap();
            run.areas.insert(area.to_string(), outcome);
            run
        };
        // One sitting: `sync` at shared-locks (step 2).
        let mut step = with_area(run("shared-locks", &["a"], &["offline"]), "sync");
        step.count = 2;
        let release = with_area(run("0.12.5", &[], &["offline"]), "sync");
        record(&out, &[release, step], &co, &keys).unwrap();
        // Another: `tool` at the same step, with a regression.
        let mut step = with_area(run("shared-locks", &["t"], &["broke"]), "tool");
        step.count = 2;
        let release = with_area(run("0.12.5", &["broke"], &[]), "tool");
        let grid = record(&out, &[release, step], &co, &keys).unwrap();

        let grid = fs_err::read_to_string(grid).unwrap();
        assert!(grid.contains("| markers | – | – |"), "{grid}");
        assert!(grid.contains("| 1 / 1 / 0 |"), "{grid}");
        assert!(grid.contains("| 1 / 0 / 1 |"), "{grid}");
        let pr = fs_err::read_to_string(out.join("tests/shared-locks.md")).unwrap();
        assert!(pr.contains("| `sync` | 1 | 0 | 1 | 0 | 0 |"), "{pr}");
        assert!(pr.contains("- `tool: broke`"), "{pr}");
        assert!(!out.join("tests/markers.md").exists());

        // The step below changes: its records describe a stack that is gone.
        let co = checkout(
            dir.path(),
            &[("markers", "one, edited"), ("shared-locks", "two")],
        );
        let keys = step_keys(&co).unwrap();
        let grid = record(&out, &[], &co, &keys).unwrap();
        let grid = fs_err::read_to_string(grid).unwrap();
        assert!(grid.contains("| shared-locks | – | – |"), "{grid}");
        assert!(!out.join("tests/shared-locks.md").exists());
    }

    #[test]
    fn a_step_is_judged_against_the_release() {
        let runs = [
            run("0.12.5", &["b", "flaky"], &["offline", "fixed"]),
            run("markers", &["fixed", "flaky"], &["offline", "b", "new"]),
        ];
        let verdicts = verdicts(&runs);
        let step = &verdicts[1];
        assert_eq!(step.regressions, ["build: b", "build: new"]);
        assert_eq!(step.unrunnable, 1);
        assert_eq!(step.fixed, ["build: fixed"]);
        assert!(finish(&runs).is_err());
        assert!(finish(&runs[..1]).is_ok());
    }

    #[test]
    fn the_release_after_the_stack_judges_only_what_failed() {
        let stack = run("markers", &["fixed", "b2"], &["offline", "b", "new"]);
        assert_eq!(
            failed_with_the_stack(std::slice::from_ref(&stack)),
            BTreeMap::from([(
                "build".to_string(),
                vec!["b".to_string(), "new".to_string(), "offline".to_string()]
            )])
        );
        // Mid-run: nothing is judged, nothing fails the check yet.
        let pending = verdicts(std::slice::from_ref(&stack));
        assert_eq!(pending[0].unjudged, 3);
        assert!(pending[0].regressions.is_empty());

        let mut release = run("0.12.5", &["b"], &["offline"]);
        release.failures_only = true;
        let runs = [release, stack];
        let verdicts = verdicts(&runs);
        assert_eq!(verdicts[1].regressions, ["build: b", "build: new"]);
        assert_eq!(verdicts[1].unrunnable, 1);
        assert!(markdown(&runs, &verdicts, &[], &[]).contains("| not measured |"));
        assert!(finish(&runs).is_err());
    }
}
