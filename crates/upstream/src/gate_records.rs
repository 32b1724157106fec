//! What uv's CI gates did at each step, kept across runs and judged against the revision the
//! stack starts from: `check/gates/records/<step>.json`.
//!
//! A record holds what was observed (did the command succeed; which tests failed, and why),
//! never a verdict: the verdict is made when a report is written, against the base's record
//! with the same checkout and toolchain. A gate that fails at a step and passes on the base is
//! a regression of that step; one that fails on the base too (a newer clippy's lint, a test that
//! cannot run on this machine) says nothing about the step and is shown as such, never as a
//! pass.
//!
//! A record is current while its key is: the checkout, the toolchain and the sha256 of every
//! patch up to its step. `upstream export` quotes a step's current record in its
//! `PR-<n>-<id>.md` by the patches alone, whatever checkout measured it, so what it quotes is
//! always about the stack as it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The gates, in the order they run (cheap first).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum
)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// `Cargo.lock` needs no update (uv's clippy job runs with `--locked`).
    Lock,
    /// `cargo fmt --all --check`.
    Fmt,
    /// `cargo check --workspace --all-targets`.
    Check,
    /// `cargo clippy --workspace --all-targets --all-features -- -D warnings`.
    Clippy,
    /// The unit tests of the crates the step touches.
    Unit,
    /// `crates/uv/tests/build/cache.rs`.
    Cache,
}

impl Gate {
    pub const ALL: &[Gate] = &[
        Gate::Lock,
        Gate::Fmt,
        Gate::Check,
        Gate::Clippy,
        Gate::Unit,
        Gate::Cache,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Gate::Lock => "lock",
            Gate::Fmt => "fmt",
            Gate::Check => "check",
            Gate::Clippy => "clippy",
            Gate::Unit => "unit",
            Gate::Cache => "cache",
        }
    }

    /// Whether the gate runs tests (judged test by test) rather than one command.
    fn runs_tests(self) -> bool {
        matches!(self, Gate::Unit | Gate::Cache)
    }
}

/// What a record was measured on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Key {
    /// The checkout's label, with its commit (`0.12.5 (210d1f6785e9)`).
    pub checkout: String,
    /// `rustc 1.97.1`: another toolchain lints and builds differently.
    pub toolchain: String,
    /// The sha256 of each patch applied, bottom first (none for the base).
    pub patches: Vec<String>,
}

/// One gate, as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Observed {
    pub gate: Gate,
    /// The command(s), as run.
    pub command: String,
    /// The command succeeded (for tests: built, and no test failed).
    pub ok: bool,
    /// For test gates: the tests that ran and passed.
    pub passed: usize,
    pub ignored: usize,
    /// For test gates: failed test → the first line of its panic message.
    pub failed: BTreeMap<String, String>,
    /// The first lines of the error, when the command itself failed (a build, a lint, a diff).
    pub excerpt: Vec<String>,
    pub seconds: u64,
    /// The full output.
    pub log: PathBuf,
}

/// A step's gates (the base is step 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StepRecord {
    pub key: Key,
    /// The step's id, or the base's label.
    pub step: String,
    pub count: usize,
    /// When it ran (UTC).
    pub ran: String,
    pub gates: Vec<Observed>,
}

/// A gate at a step, judged against the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// Fails here and passes on the base (or the base has no record): a regression.
    Fail {
        regressions: Vec<String>,
    },
    /// Fails here as on the base: says nothing about the step.
    FailsOnBaseToo,
    /// Not run at this step.
    NotRun,
}

impl Verdict {
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "FAIL",
            Verdict::FailsOnBaseToo => "fails on the base too",
            Verdict::NotRun => "–",
        }
    }

    /// A short form for the grid.
    fn mark(&self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Fail { .. } => "**✗**",
            Verdict::FailsOnBaseToo => "✗ on base too",
            Verdict::NotRun => "–",
        }
    }
}

/// Judge `observed` against the base's observation of the same gate.
pub(crate) fn judge(
    observed: Option<&Observed>,
    base: Option<&Observed>,
    is_base: bool,
) -> Verdict {
    let Some(observed) = observed else {
        return Verdict::NotRun;
    };
    if observed.ok {
        return Verdict::Pass;
    }
    if is_base {
        return Verdict::FailsOnBaseToo;
    }
    let Some(base) = base else {
        return Verdict::Fail {
            regressions: vec!["(the base has no record to judge against)".to_string()],
        };
    };
    // A test gate whose tests ran: judged test by test.
    if observed.gate.runs_tests() && observed.excerpt.is_empty() && base.excerpt.is_empty() {
        let regressions: Vec<String> = observed
            .failed
            .keys()
            .filter(|name| !base.failed.contains_key(*name))
            .cloned()
            .collect();
        return match regressions.is_empty() {
            true => Verdict::FailsOnBaseToo,
            false => Verdict::Fail { regressions },
        };
    }
    match base.ok {
        true => Verdict::Fail {
            regressions: Vec::new(),
        },
        false => Verdict::FailsOnBaseToo,
    }
}

/// The records of a report directory (`target/uvfix/upstream/check/gates`).
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(crate) fn new(gates_dir: &Path) -> Self {
        Self {
            dir: gates_dir.join("records"),
        }
    }

    fn file(&self, step: &str) -> PathBuf {
        // The base's name is a label with spaces and parentheses: keep file names plain.
        let name: String = step
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    true => c,
                    false => '_',
                },
            )
            .collect();
        self.dir.join(format!("{name}.json"))
    }

    pub(crate) fn write(&self, record: &StepRecord) -> Result<()> {
        fs_err::create_dir_all(&self.dir)?;
        fs_err::write(
            self.file(&record.step),
            serde_json::to_string_pretty(record)?,
        )?;
        Ok(())
    }

    /// `step`'s record, if it is under `key`. One under another key describes a stack, a
    /// checkout or a toolchain that is gone: it is removed.
    pub(crate) fn current(&self, step: &str, key: &Key) -> Result<Option<StepRecord>> {
        let file = self.file(step);
        let Ok(text) = fs_err::read_to_string(&file) else {
            return Ok(None);
        };
        match serde_json::from_str::<StepRecord>(&text) {
            Ok(record) if &record.key == key => Ok(Some(record)),
            _ => {
                fs_err::remove_file(&file)?;
                Ok(None)
            }
        }
    }

    /// Every readable record.
    pub(crate) fn all(&self) -> Vec<StepRecord> {
        let Ok(entries) = fs_err::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| fs_err::read_to_string(e.path()).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect()
    }

    /// For `upstream export`: the newest record of step `step` whose patches are `patches`
    /// (whatever checkout and toolchain measured it), with the base record it is judged
    /// against.
    pub(crate) fn for_patches(
        &self,
        step: &str,
        patches: &[String],
    ) -> Option<(StepRecord, Option<StepRecord>)> {
        let all = self.all();
        let record = all
            .iter()
            .filter(|r| r.step == step && r.key.patches == patches)
            .max_by(|a, b| a.ran.cmp(&b.ran))?
            .clone();
        let base = all.into_iter().find(|r| {
            r.count == 0
                && r.key.checkout == record.key.checkout
                && r.key.toolchain == record.key.toolchain
        });
        Some((record, base))
    }
}

/// The sha256 of every patch file up to each step (bottom first), as [`Key::patches`] holds
/// them: how `upstream export` finds a step's current record.
pub(crate) fn patch_keys(files: &[&Path]) -> Result<Vec<Vec<String>>> {
    let mut patches = Vec::new();
    let mut keys = Vec::new();
    for file in files {
        patches.push(uvfix_pipeline::sha256_file(file)?);
        keys.push(patches.clone());
    }
    Ok(keys)
}

fn find(record: Option<&StepRecord>, gate: Gate) -> Option<&Observed> {
    record?.gates.iter().find(|o| o.gate == gate)
}

/// One step's gates as Markdown: a row per gate (what ran, the verdict against the base, how
/// long), then what failed.
pub(crate) fn step_markdown(record: &StepRecord, base: Option<&StepRecord>) -> String {
    let is_base = record.count == 0;
    let mut text = format!(
        "uv's CI gates at {} on astral-sh/uv {} with {}{} ({}):\n\n\
         | gate | command | result | time |\n|---|---|---|---:|\n",
        match is_base {
            true => "the base".to_string(),
            false => format!("step {} (`{}`)", record.count, record.step),
        },
        record.key.checkout,
        record.key.toolchain,
        match (is_base, base) {
            (true, _) => String::new(),
            (false, Some(_)) => ", judged against the base".to_string(),
            (false, None) => ", the base not measured".to_string(),
        },
        record.ran
    );
    let mut details = String::new();
    for observed in &record.gates {
        let verdict = judge(Some(observed), find(base, observed.gate), is_base);
        let tests = match observed.gate.runs_tests() && observed.excerpt.is_empty() {
            true => format!(
                ": {} passed, {} failed, {} ignored",
                observed.passed,
                observed.failed.len(),
                observed.ignored
            ),
            false => String::new(),
        };
        let _ = writeln!(
            text,
            "| {} | `{}` | {}{tests} | {} s |",
            observed.gate.name(),
            observed.command,
            verdict.word(),
            observed.seconds
        );
        if observed.ok {
            continue;
        }
        let _ = write!(
            details,
            "\n`{}` {}:\n",
            observed.gate.name(),
            match &verdict {
                Verdict::Fail { .. } => "fails here and passes on the base",
                _ => "fails here and on the base",
            }
        );
        if let Verdict::Fail { regressions } = &verdict {
            for name in regressions {
                let why = observed.failed.get(name).map(String::as_str).unwrap_or("");
                let _ = writeln!(details, "- `{name}` {why}");
            }
        }
        if !observed.excerpt.is_empty() {
            details.push_str("\n```text\n");
            for line in &observed.excerpt {
                details.push_str(line);
                details.push('\n');
            }
            details.push_str("```\n");
        } else if matches!(verdict, Verdict::FailsOnBaseToo) {
            for (name, why) in &observed.failed {
                let _ = writeln!(details, "- `{name}` {why}");
            }
        }
    }
    text.push_str(&details);
    text
}

/// The grid: a row per step (the base first), a column per gate.
pub(crate) fn grid_markdown(
    label: &str,
    rows: &[(String, Option<StepRecord>)],
    base: Option<&StepRecord>,
    gates: &[Gate],
) -> String {
    let mut text = format!(
        "uv's CI gates at each step on astral-sh/uv {label}: ✓ passes, **✗** fails here and \
         passes on the base, `✗ on base too`: fails on the base as well (says nothing about the \
         step), – not run for the stack as it is.\n\n| step |"
    );
    for gate in gates {
        let _ = write!(text, " {} |", gate.name());
    }
    text.push_str("\n|---|");
    text.push_str(&":---:|".repeat(gates.len()));
    text.push('\n');
    for (step, record) in rows {
        let _ = write!(text, "| {step} |");
        let is_base = record.as_ref().is_some_and(|r| r.count == 0);
        for gate in gates {
            let verdict = judge(find(record.as_ref(), *gate), find(base, *gate), is_base);
            let _ = write!(text, " {} |", verdict.mark());
        }
        text.push('\n');
    }
    text
}

/// The grid's columns: the gates this run asked for, and every gate a row has a current
/// record of, so that a run of one gate does not hide what earlier runs of the others found.
pub(crate) fn columns(rows: &[(String, Option<StepRecord>)], requested: &[Gate]) -> Vec<Gate> {
    Gate::ALL
        .iter()
        .copied()
        .filter(|gate| {
            requested.contains(gate)
                || rows
                    .iter()
                    .any(|(_, record)| find(record.as_ref(), *gate).is_some())
        })
        .collect()
}

/// The failures of `record` against `base`, one line each, for the command's error.
pub(crate) fn regressions(record: &StepRecord, base: Option<&StepRecord>) -> Vec<String> {
    record
        .gates
        .iter()
        .filter_map(|observed| {
            match judge(Some(observed), find(base, observed.gate), record.count == 0) {
                Verdict::Fail { regressions } if regressions.is_empty() => Some(format!(
                    "{}: {} fails: {}",
                    record.step,
                    observed.gate.name(),
                    observed
                        .excerpt
                        .first()
                        .map(String::as_str)
                        .unwrap_or("see its log")
                )),
                Verdict::Fail { regressions } => Some(format!(
                    "{}: {}: {}",
                    record.step,
                    observed.gate.name(),
                    regressions.join(", ")
                )),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(gate: Gate, ok: bool, failed: &[&str]) -> Observed {
        Observed {
            gate,
            command: format!("cargo {}", gate.name()),
            ok,
            passed: 3,
            ignored: 0,
            failed: failed
                .iter()
                .map(|n| (n.to_string(), "why".to_string()))
                .collect(),
            excerpt: match (ok, gate.runs_tests()) {
                (false, false) => vec!["error[E0308]: mismatched types".into()],
                _ => Vec::new(),
            },
            seconds: 1,
            log: PathBuf::from("log"),
        }
    }

    fn record(step: &str, count: usize, gates: Vec<Observed>) -> StepRecord {
        StepRecord {
            key: Key {
                checkout: "0.12.5 (210d1f6785e9)".into(),
                toolchain: "rustc 1.97.1".into(),
                patches: vec!["p".into(); count],
            },
            step: step.into(),
            count,
            ran: "2026-12-06 02:00 UTC".into(),
            gates,
        }
    }

    #[test]
    fn a_gate_is_judged_against_the_base() {
        let base = record(
            "0.12.5",
            0,
            vec![
                observed(Gate::Check, true, &[]),
                observed(Gate::Clippy, false, &[]),
                observed(Gate::Unit, false, &["uv-python: root_only"]),
            ],
        );
        let step = record(
            "scratch",
            4,
            vec![
                observed(Gate::Check, false, &[]),
                observed(Gate::Clippy, false, &[]),
                observed(
                    Gate::Unit,
                    false,
                    &["uv-python: root_only", "uv-cache: new"],
                ),
            ],
        );
        let verdicts: Vec<Verdict> = step
            .gates
            .iter()
            .map(|o| judge(Some(o), find(Some(&base), o.gate), false))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Fail {
                    regressions: Vec::new()
                },
                Verdict::FailsOnBaseToo,
                Verdict::Fail {
                    regressions: vec!["uv-cache: new".into()]
                },
            ]
        );
        let lines = regressions(&step, Some(&base));
        assert_eq!(
            lines,
            [
                "scratch: check fails: error[E0308]: mismatched types",
                "scratch: unit: uv-cache: new"
            ]
        );
        let md = step_markdown(&step, Some(&base));
        assert!(
            md.contains("| check | `cargo check` | FAIL | 1 s |"),
            "{md}"
        );
        assert!(
            md.contains("| clippy | `cargo clippy` | fails on the base too | 1 s |"),
            "{md}"
        );
        assert!(md.contains("error[E0308]: mismatched types"), "{md}");
        assert!(md.contains("- `uv-cache: new` why"), "{md}");
        let grid = grid_markdown(
            "0.12.5",
            &[
                ("0.12.5".into(), Some(base.clone())),
                ("scratch".into(), Some(step)),
                ("hints".into(), None),
            ],
            Some(&base),
            &[Gate::Check, Gate::Clippy, Gate::Unit],
        );
        assert!(
            grid.contains("| 0.12.5 | ✓ | ✗ on base too | ✗ on base too |"),
            "{grid}"
        );
        assert!(
            grid.contains("| scratch | **✗** | ✗ on base too | **✗** |"),
            "{grid}"
        );
        assert!(grid.contains("| hints | – | – | – |"), "{grid}");
    }

    /// A run of one gate keeps the columns of the gates earlier runs recorded.
    #[test]
    fn columns_keep_the_gates_earlier_runs_recorded() {
        let base = record(
            "0.12.5 (210d1f6785e9)",
            0,
            vec![
                observed(Gate::Lock, true, &[]),
                observed(Gate::Check, true, &[]),
            ],
        );
        let rows = [("0.12.5".to_string(), Some(base)), ("hints".into(), None)];
        assert_eq!(
            columns(&rows, &[Gate::Unit]),
            vec![Gate::Lock, Gate::Check, Gate::Unit]
        );
    }

    #[test]
    fn records_under_another_key_are_dropped_and_export_finds_by_patches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let base = record(
            "0.12.5 (210d1f6785e9)",
            0,
            vec![observed(Gate::Fmt, true, &[])],
        );
        let step = record("markers", 1, vec![observed(Gate::Fmt, true, &[])]);
        store.write(&base).unwrap();
        store.write(&step).unwrap();
        let (found, found_base) = store.for_patches("markers", &["p".to_string()]).unwrap();
        assert_eq!(found, step);
        assert_eq!(found_base, Some(base));
        assert!(store.for_patches("markers", &["q".to_string()]).is_none());
        let mut other = step.key.clone();
        other.patches = vec!["q".into()];
        assert_eq!(store.current("markers", &other).unwrap(), None);
        assert!(store.for_patches("markers", &["p".to_string()]).is_none());
    }
}
