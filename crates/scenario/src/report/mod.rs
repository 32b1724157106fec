//! Reports of a set of [`CellResult`]s: the terminal summary ([`render_summary`]), the full
//! grid as a table and as Markdown (GitHub job summary), JSON and JUnit XML.
//!
//! The grid has one row per (scenario, cache state) and one column per sandbox, in the order
//! the results first mention them (the matrix runner's order). A cell lists every uv label,
//! e.g. `patched pass` / `pristine xfail`. Skip reasons are long, so cells show `skip[n]` and
//! the reasons are listed once below the grid. [`results`] renders the reports runs left
//! behind as `docs/results.md`.

mod bases;
mod cost;
pub mod results;
mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use uvfix_sandbox::Sandbox;

use crate::build::Build;
use crate::cell::CellResult;
use crate::expect::Outcome;

pub use bases::{BaseResults, cells_lost_by_other_bases, render_bases};
pub use cost::Cost;
pub use summary::render_summary;

/// Counts over a result set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub pass: usize,
    pub xfail: usize,
    pub fail: usize,
    pub skip: usize,
}

impl Summary {
    pub fn of(results: &[CellResult]) -> Self {
        let mut s = Self::default();
        for r in results {
            match r.outcome {
                Outcome::Pass => s.pass += 1,
                Outcome::ExpectedFail => s.xfail += 1,
                Outcome::Fail(_) => s.fail += 1,
                Outcome::Skip(_) => s.skip += 1,
            }
        }
        s
    }

    /// The closing line test-log readers look for.
    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped ({} expected failures among the passed)",
            self.pass + self.xfail,
            self.fail,
            self.skip,
            self.xfail
        )
    }
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "-".to_owned(), |c| c.to_string())
}

/// First-appearance order without duplicates.
pub(crate) fn ordered<T: PartialEq + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

struct Grid<'a> {
    sandboxes: Vec<Sandbox>,
    builds: Vec<&'a Build>,
    rows: Vec<(crate::scenario::ScenarioId, crate::state::CacheState)>,
    cells: BTreeMap<(usize, usize), Vec<&'a CellResult>>,
    skip_reasons: Vec<&'a str>,
}

impl<'a> Grid<'a> {
    fn new(results: &'a [CellResult]) -> Self {
        let sandboxes = ordered(results.iter().map(|r| r.sandbox));
        let builds = ordered(results.iter().map(|r| &r.uv_label));
        let mut rows = ordered(results.iter().map(|r| (r.scenario, r.state)));
        rows.sort();
        let mut skip_reasons = Vec::new();
        let mut cells: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for r in results {
            let row = rows.iter().position(|k| *k == (r.scenario, r.state));
            let col = sandboxes.iter().position(|s| *s == r.sandbox);
            if let (Some(row), Some(col)) = (row, col) {
                cells.entry((row, col)).or_default().push(r);
            }
            if let Outcome::Skip(reason) = &r.outcome
                && !skip_reasons.contains(&reason.as_str())
            {
                skip_reasons.push(reason.as_str());
            }
        }
        Self {
            sandboxes,
            builds,
            rows,
            cells,
            skip_reasons,
        }
    }

    fn word(&self, r: &CellResult) -> String {
        match &r.outcome {
            Outcome::Skip(reason) => {
                let n = self
                    .skip_reasons
                    .iter()
                    .position(|s| *s == reason)
                    .unwrap_or(0);
                format!("skip[{}]", n + 1)
            }
            other => other.word().to_owned(),
        }
    }

    /// Lines `build word` for one grid cell, in build order.
    fn cell_lines(&self, row: usize, col: usize) -> Vec<String> {
        let Some(found) = self.cells.get(&(row, col)) else {
            return vec!["-".into()];
        };
        let mut lines = Vec::new();
        for build in &self.builds {
            for r in found.iter().filter(|r| &r.uv_label == *build) {
                lines.push(format!("{build} {}", self.word(r)));
            }
        }
        lines
    }
}

/// (a) The terminal table.
pub fn render_table(results: &[CellResult]) -> String {
    let grid = Grid::new(results);
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    let mut header = vec!["scenario".to_owned(), "cache state".to_owned()];
    header.extend(grid.sandboxes.iter().map(|s| s.to_string()));
    table.set_header(header);
    for (ri, (scenario, state)) in grid.rows.iter().enumerate() {
        let mut row = vec![scenario.name().to_owned(), state.name().to_owned()];
        for ci in 0..grid.sandboxes.len() {
            row.push(grid.cell_lines(ri, ci).join("\n"));
        }
        table.add_row(row);
    }
    let mut out = table.to_string();
    out.push('\n');
    for (i, reason) in grid.skip_reasons.iter().enumerate() {
        out.push_str(&format!("skip[{}]: {reason}\n", i + 1));
    }
    for r in results {
        if let Outcome::Fail(reason) = &r.outcome {
            out.push_str(&format!(
                "FAIL {} {} {} {}: {reason}\n",
                r.uv_label, r.sandbox, r.scenario, r.state
            ));
        }
    }
    out.push_str(&Summary::of(results).line());
    out.push('\n');
    out
}

/// For HTML inside Markdown (`<details>`), where backslash escapes are not processed.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// For table cells: HTML-escaped, and `|` would end the cell.
fn md_escape(s: &str) -> String {
    html_escape(s).replace('|', "\\|")
}

/// (b) Markdown for `$GITHUB_STEP_SUMMARY`.
pub fn render_markdown(results: &[CellResult]) -> String {
    let grid = Grid::new(results);
    let summary = Summary::of(results);
    let mut md = String::from("## uv on a read-only cache\n\n");
    md.push_str(&format!(
        "**{}** pass, **{}** xfail, **{}** FAIL, **{}** skip\n\n",
        summary.pass, summary.xfail, summary.fail, summary.skip
    ));
    md.push_str("| scenario | cache state |");
    for s in &grid.sandboxes {
        md.push_str(&format!(" {} |", md_escape(s.name())));
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(grid.sandboxes.len()));
    md.push('\n');
    for (ri, (scenario, state)) in grid.rows.iter().enumerate() {
        md.push_str(&format!("| {scenario} | {state} |"));
        for ci in 0..grid.sandboxes.len() {
            let lines: Vec<String> = grid
                .cell_lines(ri, ci)
                .into_iter()
                .map(|l| {
                    let l = md_escape(&l);
                    if l.ends_with(" FAIL") {
                        format!("**{l}**")
                    } else {
                        l
                    }
                })
                .collect();
            md.push_str(&format!(" {} |", lines.join("<br>")));
        }
        md.push('\n');
    }
    if !grid.skip_reasons.is_empty() {
        md.push_str("\n### Skipped\n\n");
        for (i, reason) in grid.skip_reasons.iter().enumerate() {
            md.push_str(&format!("- skip[{}]: {}\n", i + 1, md_escape(reason)));
        }
    }
    let fails: Vec<_> = results.iter().filter(|r| r.outcome.is_fail()).collect();
    if !fails.is_empty() {
        md.push_str("\n### Failures\n\n");
        for r in fails {
            let Outcome::Fail(reason) = &r.outcome else {
                continue;
            };
            md.push_str(&format!(
                "<details><summary><b>{} {} {} {}</b>: {}</summary>\n\n",
                html_escape(&r.uv_label.to_string()),
                r.sandbox,
                r.scenario,
                r.state,
                html_escape(reason)
            ));
            md.push_str(&format!(
                "command: `{}`, exit: {}, expected: {:?} ({})\n\n",
                r.command,
                exit_text(r.exit_code),
                r.expected,
                r.expected_why
            ));
            // Four backticks: stderr may itself contain a triple-backtick fence.
            md.push_str(&format!(
                "````text\n{}\n````\n\n</details>\n\n",
                r.stderr.trim_end()
            ));
        }
    }
    md
}

/// (c) JSON (pretty), a list of [`CellResult`].
pub fn render_json(results: &[CellResult]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(results)
}

/// (d) JUnit XML: one suite per uv label; test case `sandbox/scenario/state`. An expected
/// failure is a success (with a note in system-out); a skip is skipped with its reason.
pub fn render_junit(results: &[CellResult]) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("uvfix");
    for label in ordered(results.iter().map(|r| &r.uv_label)) {
        let mut suite = TestSuite::new(format!("uvfix.{label}"));
        let mut total = Duration::ZERO;
        for r in results.iter().filter(|r| &r.uv_label == label) {
            let status = match &r.outcome {
                Outcome::Pass | Outcome::ExpectedFail => TestCaseStatus::success(),
                Outcome::Fail(reason) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(reason.as_str()).set_type("uvfix.cell");
                    s
                }
                Outcome::Skip(reason) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(reason.as_str());
                    s
                }
            };
            let mut case =
                TestCase::new(format!("{}/{}/{}", r.sandbox, r.scenario, r.state), status);
            let time = Duration::from_millis(r.duration_ms);
            total += time;
            case.set_classname(format!("uvfix.{label}.{}", r.sandbox))
                .set_time(time);
            let mut out = format!(
                "command: {}\nexpected: {:?} ({})\noutcome: {}\nexit: {}\ncanary: {}\n",
                r.command,
                r.expected,
                r.expected_why,
                r.outcome.word(),
                exit_text(r.exit_code),
                r.canary.map_or("-", |d| d.into()),
            );
            if let Some(diff) = &r.cache_diff {
                out.push_str(&format!("cache: {}\n", diff.summary()));
            }
            out.push_str(&r.stdout);
            case.set_system_out(out);
            if !r.stderr.is_empty() {
                case.set_system_err(r.stderr.as_str());
            }
            suite.add_test_case(case);
        }
        suite.set_time(total);
        report.add_test_suite(suite);
    }
    report.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing report {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("JUnit: {0}")]
    Junit(#[from] quick_junit::SerializeError),
}

/// Paths written by [`write_reports`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub table: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub junit: PathBuf,
}

/// Write `matrix.txt`, `matrix.md`, `matrix.json` and `junit.xml` under `dir` (created).
pub fn write_reports(results: &[CellResult], dir: &Path) -> Result<ReportFiles, ReportError> {
    let files = ReportFiles {
        table: dir.join("matrix.txt"),
        markdown: dir.join("matrix.md"),
        json: dir.join("matrix.json"),
        junit: dir.join("junit.xml"),
    };
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Io { path, source }
    };
    fs_err::create_dir_all(dir).map_err(io(dir))?;
    fs_err::write(&files.table, render_table(results)).map_err(io(&files.table))?;
    fs_err::write(&files.markdown, render_markdown(results)).map_err(io(&files.markdown))?;
    fs_err::write(&files.json, render_json(results)?).map_err(io(&files.json))?;
    fs_err::write(&files.junit, render_junit(results)?).map_err(io(&files.junit))?;
    Ok(files)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::digest::TreeDiff;
    use crate::expect::Expect;
    use crate::scenario::ScenarioId;
    use crate::state::CacheState;
    use assert_fs::prelude::*;

    pub(super) fn cell(
        label: &str,
        sandbox: &str,
        sc: ScenarioId,
        st: CacheState,
        outcome: Outcome,
    ) -> CellResult {
        CellResult {
            uv_label: label.parse().unwrap(),
            sandbox: sandbox.parse().unwrap(),
            scenario: sc,
            state: st,
            expected: Expect::Pass,
            expected_why: "test".into(),
            outcome,
            exit_code: Some(2),
            stdout: String::new(),
            stderr: "error: Read-only file system (os error 30) | <x>".into(),
            canary: Some(uvfix_sandbox::Denial::Erofs),
            cache_diff: Some(TreeDiff::default()),
            duration_ms: 1234,
            timing: Default::default(),
            command: "uv run python3 -c 'print(1)'".into(),
            root: None,
            state_proof: None,
            write_set: None,
            write_check: None,
            lock: None,
        }
    }

    pub(super) fn sample() -> Vec<CellResult> {
        vec![
            cell(
                "patched",
                "ro-home",
                ScenarioId::S2,
                CacheState::Warm,
                Outcome::Pass,
            ),
            cell(
                "pristine",
                "ro-home",
                ScenarioId::S2,
                CacheState::Warm,
                Outcome::ExpectedFail,
            ),
            cell(
                "patched",
                "landlock",
                ScenarioId::S1,
                CacheState::Warm,
                Outcome::Fail("exit 2: boom | <b>".into()),
            ),
            cell(
                "pristine",
                "landlock",
                ScenarioId::S1,
                CacheState::Warm,
                Outcome::ExpectedFail,
            ),
            cell(
                "patched",
                "seatbelt",
                ScenarioId::S1,
                CacheState::Warm,
                Outcome::Skip("macOS only".into()),
            ),
            cell(
                "patched",
                "ro-home",
                ScenarioId::S1,
                CacheState::LockMissing,
                Outcome::Pass,
            ),
        ]
    }

    /// The sample as the terminal table: rows sorted by scenario, then state (S1 warm, S1
    /// lock-missing, S2 warm); columns in first-appearance order; skip reasons once, below;
    /// every FAIL with its reason; the closing counts.
    #[test]
    fn table_contains_cells() {
        insta::assert_snapshot!(render_table(&sample()));
    }

    #[test]
    fn markdown_is_a_table_with_failures() {
        let md = render_markdown(&sample());
        insta::assert_snapshot!(md);
        // Escaping, which a reviewed snapshot would not make obvious: the stderr sits verbatim
        // in a fence; the reason, in HTML, is escaped.
        assert!(
            md.contains("````text\nerror: Read-only file system (os error 30) | <x>\n````"),
            "{md}"
        );
        assert!(
            md.contains("</b>: exit 2: boom | &lt;b&gt;</summary>"),
            "{md}"
        );
    }

    /// JSON is read back by `cargo xtask report` and `--all-bases`: it round-trips, and the
    /// outcome is written by its kebab-case name.
    #[test]
    fn json_round_trip() {
        let results = sample();
        let json = render_json(&results).unwrap();
        assert!(json.contains("\"outcome\": \"expected-fail\""), "{json}");
        let parsed: Vec<CellResult> = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, results);
    }

    /// A suite per build; an expected failure is a success, a FAIL a failure with its
    /// (escaped) reason, a skip skipped with its reason.
    #[test]
    fn junit_has_suites_and_statuses() {
        insta::assert_snapshot!(render_junit(&sample()).unwrap());
    }

    #[test]
    fn writes_all_reports() {
        let dir = assert_fs::TempDir::new().unwrap();
        let results = sample();
        let files = write_reports(&results, &dir.path().join("out")).unwrap();
        for (file, rendered) in [
            (&files.table, render_table(&results)),
            (&files.markdown, render_markdown(&results)),
            (&files.json, render_json(&results).unwrap()),
            (&files.junit, render_junit(&results).unwrap()),
        ] {
            assert_eq!(
                fs_err::read_to_string(file).unwrap(),
                rendered,
                "{}",
                file.display()
            );
        }
        assert_eq!(files.json, dir.child("out/matrix.json").path());
    }

    #[test]
    fn empty_results_render() {
        let rendered = format!(
            "--- table\n{}--- markdown\n{}--- junit\n{}",
            render_table(&[]),
            render_markdown(&[]),
            render_junit(&[]).unwrap()
        );
        insta::assert_snapshot!(rendered);
    }
}
