//! Upstream's tests at each step, kept across runs: `check/records/<step>/<target>.json`.
//!
//! The whole grid (every step × every test target) takes hours on two cores, so it is run
//! in parts (`--step`, `--area`). Each run records what it judged, one file per step and test
//! target, under a key: the checkout it ran in and the sha256 of every patch up to that step.
//! The step's part of its PR description and the grid (`records/steps.md`) are made from the
//! records whose key is the current one; a record under another key (another revision, a
//! patch of the step or below it changed) says nothing about the stack as it is, and is
//! removed by the next run that writes records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What a record was measured on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Key {
    /// The checkout's label, with its commit (`0.12.5 (210d1f6785e9)`).
    pub checkout: String,
    /// The sha256 of each patch applied, bottom first.
    pub patches: Vec<String>,
}

/// One test target at one step, judged against the release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub key: Key,
    pub target: String,
    pub passed: usize,
    pub ignored: usize,
    /// Failed here and on the release: could not run on the machine that ran them.
    pub unrunnable: usize,
    /// Failed here, passed on the release (or added by the stack).
    pub regressions: Vec<String>,
    /// Failed on the release, pass here; `None` when the release ran only what failed with
    /// the stack, which does not measure this.
    pub fixed: Option<Vec<String>>,
    /// Failed here while the release has not run yet (an interrupted run).
    pub unjudged: usize,
    /// When it ran (UTC, RFC 3339).
    pub ran: String,
}

/// The records of a report directory (`target/uvfix/upstream/check`).
pub(crate) struct Records {
    dir: PathBuf,
}

impl Records {
    pub(crate) fn new(check_dir: &Path) -> Self {
        Self {
            dir: check_dir.join("records"),
        }
    }

    fn step_dir(&self, step: &str) -> PathBuf {
        self.dir.join(step)
    }

    /// Keep `record` for `step`, replacing that target's earlier one.
    pub(crate) fn write(&self, step: &str, record: &Record) -> Result<()> {
        let dir = self.step_dir(step);
        fs_err::create_dir_all(&dir)?;
        fs_err::write(
            dir.join(format!("{}.json", record.target)),
            serde_json::to_string_pretty(record)?,
        )?;
        Ok(())
    }

    /// `step`'s records under `key`, by test target. Records under another key describe a
    /// stack that is gone: they are removed.
    pub(crate) fn current(&self, step: &str, key: &Key) -> Result<Vec<Record>> {
        let dir = self.step_dir(step);
        let Ok(entries) = fs_err::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let text = fs_err::read_to_string(&path)?;
            // A record this version cannot read is as stale as one under another key.
            match serde_json::from_str::<Record>(&text) {
                Ok(record) if &record.key == key => records.push(record),
                _ => fs_err::remove_file(&path)
                    .with_context(|| format!("removing the stale record {}", path.display()))?,
            }
        }
        records.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(records)
    }
}

/// A step's part of its PR description: one row per test target, then what to look at.
pub(crate) fn step_markdown(release: &str, records: &[Record]) -> String {
    let mut text = format!(
        "Against {release}, by test target (each row from the run that last measured it):\n\n\
         | test target | passed | ignored | failed here and on the release | regressions | \
         fixed | ran |\n|---|---:|---:|---:|---:|---:|---|\n"
    );
    for r in records {
        let regressions = match r.unjudged {
            0 => r.regressions.len().to_string(),
            n => format!("{} (+{n} not judged yet)", r.regressions.len()),
        };
        let fixed = r
            .fixed
            .as_ref()
            .map_or("not measured".to_string(), |f| f.len().to_string());
        let _ = writeln!(
            text,
            "| `{}` | {} | {} | {} | {regressions} | {fixed} | {} |",
            r.target, r.passed, r.ignored, r.unrunnable, r.ran
        );
    }
    let regressions: Vec<&String> = records.iter().flat_map(|r| &r.regressions).collect();
    if regressions.is_empty() {
        text.push_str(
            "\nNo test that passes on the release fails with this step, and no snapshot changed.\n",
        );
    } else {
        text.push_str("\nFail with this step, pass on the release:\n\n");
        for name in regressions {
            let _ = writeln!(text, "- `{name}`");
        }
    }
    let fixed: Vec<&String> = records
        .iter()
        .flat_map(|r| r.fixed.iter().flatten())
        .collect();
    if !fixed.is_empty() {
        text.push_str("\nFail on the release, pass with this step:\n\n");
        for name in fixed {
            let _ = writeln!(text, "- `{name}`");
        }
    }
    text
}

/// The grid: a row per step, a column per test target, `passed / failed on the release too /
/// regressions` in each cell; `–` where no current record is.
pub(crate) fn grid_markdown(
    release: &str,
    steps: &[(String, Vec<Record>)],
    targets: &[&str],
) -> String {
    let mut text = format!(
        "Upstream's tests at each step, against {release}: passed / failed here and on the \
         release too / regressions (`–`: not run at this step for the stack as it is).\n\n\
         | step |"
    );
    for target in targets {
        let _ = write!(text, " `{target}` |");
    }
    text.push_str("\n|---|");
    text.push_str(&"---:|".repeat(targets.len()));
    text.push('\n');
    for (step, records) in steps {
        let by_target: BTreeMap<&str, &Record> =
            records.iter().map(|r| (r.target.as_str(), r)).collect();
        let _ = write!(text, "| {step} |");
        for target in targets {
            match by_target.get(target) {
                Some(r) if r.unjudged > 0 => {
                    let _ = write!(text, " {} / {} not judged |", r.passed, r.unjudged);
                }
                Some(r) => {
                    let _ = write!(
                        text,
                        " {} / {} / {} |",
                        r.passed,
                        r.unrunnable,
                        r.regressions.len()
                    );
                }
                None => text.push_str(" – |"),
            }
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(patches: &[&str]) -> Key {
        Key {
            checkout: "0.12.5 (210d1f6785e9)".into(),
            patches: patches.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn record(key: Key, target: &str, passed: usize) -> Record {
        Record {
            key,
            target: target.into(),
            passed,
            ignored: 0,
            unrunnable: 2,
            regressions: Vec::new(),
            fixed: None,
            unjudged: 0,
            ran: "2026-11-30T09:00:00Z".into(),
        }
    }

    #[test]
    fn records_of_separate_runs_add_up_and_a_changed_patch_drops_them() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path());
        // Two runs, two targets, the same stack.
        records
            .write("scratch", &record(key(&["a", "b"]), "sync", 233))
            .unwrap();
        records
            .write("scratch", &record(key(&["a", "b"]), "tool", 184))
            .unwrap();
        // A later run of the same target replaces the earlier record.
        records
            .write("scratch", &record(key(&["a", "b"]), "sync", 234))
            .unwrap();
        let now = records.current("scratch", &key(&["a", "b"])).unwrap();
        assert_eq!(
            now.iter()
                .map(|r| (r.target.as_str(), r.passed))
                .collect::<Vec<_>>(),
            [("sync", 234), ("tool", 184)]
        );
        // The step below changed: nothing recorded describes the stack any more, and the
        // records under the old key are gone (asking with it again finds nothing).
        assert!(
            records
                .current("scratch", &key(&["a2", "b"]))
                .unwrap()
                .is_empty()
        );
        assert!(
            records
                .current("scratch", &key(&["a", "b"]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_grid_shows_what_was_not_run() {
        let k = key(&["a"]);
        let mut pending = record(k.clone(), "tool", 184);
        pending.unjudged = 20;
        let steps = vec![
            (
                "markers".to_string(),
                vec![record(k.clone(), "sync", 233), pending],
            ),
            ("shared-locks".to_string(), Vec::new()),
        ];
        let grid = grid_markdown("0.12.5", &steps, &["sync", "tool"]);
        assert!(
            grid.contains("| markers | 233 / 2 / 0 | 184 / 20 not judged |"),
            "{grid}"
        );
        assert!(grid.contains("| shared-locks | – | – |"), "{grid}");
    }

    #[test]
    fn a_regression_is_named_in_the_step_description() {
        let mut broken = record(key(&["a"]), "sync", 232);
        broken.regressions = vec!["sync: sync::locked".into()];
        let text = step_markdown("0.12.5", &[record(key(&["a"]), "build", 46), broken]);
        assert!(
            text.contains("| `sync` | 232 | 0 | 2 | 1 | not measured |"),
            "{text}"
        );
        assert!(text.contains("- `sync: sync::locked`"), "{text}");
        assert!(!text.contains("no snapshot changed"), "{text}");
    }
}
