//! `docs/results.md`: what the latest runs found, generated from the reports they left under
//! `target/uvfix/` (never typed), with the machine, the date and the commit in its header.
//!
//! [`Reports::load`] reads whichever reports exist; [`render_results`] renders them, with a
//! section per report found and, for each one missing, the command that makes it. Loading and
//! rendering are apart so that the rendering is tested on fixed input.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{BaseResults, Cost, Summary, render_bases};
use crate::cell::CellResult;
use crate::expect::Outcome;

/// Failures listed by name before the rest is left to `matrix.md`.
const FAILURES_LISTED: usize = 20;

/// Where and when the results were generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `2026-12-01 10:00 UTC`.
    pub generated: String,
    /// `abc1234def0` (and whether the tree had changes).
    pub commit: String,
    pub machine: Machine,
}

/// The machine the reports were made on (the one `cargo xtask report` runs on: reports are not
/// carried between machines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cpus: usize,
    /// `Linux 6.1.0-18-amd64`.
    pub kernel: String,
    /// `Debian GNU/Linux 12 (bookworm)`.
    pub os: String,
}

impl Machine {
    /// This machine: the CPUs this process may use, `uname -sr`, and `/etc/os-release`'s
    /// `PRETTY_NAME`.
    pub fn detect() -> Self {
        let uname = |flag: &str| {
            std::process::Command::new("uname")
                .arg(flag)
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .unwrap_or_else(|| "unknown".into())
        };
        let os = fs_err::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    line.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_owned())
                })
            })
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: format!("{} {}", uname("-s"), uname("-r")),
            os,
        }
    }
}

/// One report file that exists: where it is (relative to the repository), when it was
/// written, and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    pub path: String,
    /// The file's modification time, `2026-12-01 09:58 UTC`.
    pub written: String,
    pub data: T,
}

/// A step's row of `steps.json` (`cargo xtask matrix --steps`): the cells it turned green,
/// red, and where it disagreed with the per-step data. Only the fields shown here are read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StepRow {
    pub number: usize,
    pub id: String,
    pub green: Vec<String>,
    pub red: Vec<String>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

/// A base's matrix (its `matrix.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct BaseMatrix {
    /// The uv release of the base, `0.12.5`.
    pub base: String,
    pub matrix: Found<Vec<CellResult>>,
}

/// A report that was looked for: found, or missing with the command that makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Looked<T> {
    Found(T),
    Missing { path: String, made_by: String },
}

/// Everything `docs/results.md` is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Reports {
    /// The default base's matrix first, then every other base's.
    pub matrices: Vec<Looked<BaseMatrix>>,
    /// `cargo xtask matrix --steps` (developer run), then `ci/steps.sh` (CI's).
    pub steps: Vec<Looked<Found<Vec<StepRow>>>>,
    /// `cargo xtask bench`'s text report.
    pub bench: Looked<Found<String>>,
    /// `cargo xtask upstream check --gates`'s table (`gates.md`): uv's own CI per step.
    pub gates: Looked<Found<String>>,
}

/// Where the reports live: the repository root (for relative paths in the text), the default
/// base's work directory, and every other base's with its release.
pub struct Locations<'a> {
    pub root: &'a Path,
    pub default_base: &'a str,
    /// `target/uvfix`.
    pub work: &'a Path,
    /// `(0.13.6, target/uvfix/bases/0.13.6)`.
    pub other_bases: &'a [(String, PathBuf)],
}

/// Reading or parsing a report failed (a report that is absent is not an error).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a report this version understands ({source}); rerun the command that writes it"
    )]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Reports {
    /// Read every report that exists under `at`.
    pub fn load(at: &Locations<'_>) -> Result<Self, LoadError> {
        let shown = |path: &Path| {
            path.strip_prefix(at.root)
                .unwrap_or(path)
                .display()
                .to_string()
        };
        let mut matrices = vec![matrix(
            at.default_base,
            &at.work.join("matrix/matrix.json"),
            "cargo xtask matrix",
            &shown,
        )?];
        for (base, work) in at.other_bases {
            matrices.push(matrix(
                base,
                &work.join("matrix/matrix.json"),
                &format!("cargo xtask matrix --base {base}"),
                &shown,
            )?);
        }
        let steps = vec![
            json(
                &at.work.join("matrix/steps.json"),
                "cargo xtask matrix --steps",
                &shown,
            )?,
            json(&at.work.join("steps/steps.json"), "ci/steps.sh", &shown)?,
        ];
        let bench = text(
            &at.work.join("bench/bench.txt"),
            "cargo xtask bench",
            &shown,
        )?;
        let gates = text(
            &at.work.join("upstream/check/gates/gates.md"),
            "cargo xtask upstream check <astral-sh/uv clone> --gates",
            &shown,
        )?;
        Ok(Self {
            matrices,
            steps,
            bench,
            gates,
        })
    }
}

/// A report that is text already (shown as it is).
fn text(
    path: &Path,
    made_by: &str,
    shown: &dyn Fn(&Path) -> String,
) -> Result<Looked<Found<String>>, LoadError> {
    Ok(match read(path)? {
        Some((text, written)) => Looked::Found(Found {
            path: shown(path),
            written,
            data: text,
        }),
        None => Looked::Missing {
            path: shown(path),
            made_by: made_by.into(),
        },
    })
}

/// The file's text and its modification time, or `None` when it does not exist.
fn read(path: &Path) -> Result<Option<(String, String)>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let text = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    };
    let modified = fs_err::metadata(path)
        .and_then(|m| m.modified())
        .map_err(io)?;
    Ok(Some((text, utc(modified))))
}

fn json<T: serde::de::DeserializeOwned>(
    path: &Path,
    made_by: &str,
    shown: &dyn Fn(&Path) -> String,
) -> Result<Looked<Found<T>>, LoadError> {
    Ok(match read(path)? {
        Some((text, written)) => Looked::Found(Found {
            path: shown(path),
            written,
            data: serde_json::from_str(&text).map_err(|source| LoadError::Json {
                path: path.to_owned(),
                source,
            })?,
        }),
        None => Looked::Missing {
            path: shown(path),
            made_by: made_by.into(),
        },
    })
}

fn matrix(
    base: &str,
    path: &Path,
    made_by: &str,
    shown: &dyn Fn(&Path) -> String,
) -> Result<Looked<BaseMatrix>, LoadError> {
    Ok(match json(path, made_by, shown)? {
        Looked::Found(matrix) => Looked::Found(BaseMatrix {
            base: base.to_owned(),
            matrix,
        }),
        Looked::Missing { path, made_by } => Looked::Missing { path, made_by },
    })
}

/// `2026-12-01 09:58 UTC`.
pub fn utc(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// The whole of `docs/results.md`.
pub fn render_results(header: &Header, reports: &Reports) -> String {
    let mut md = String::from("# Results\n\n");
    md.push_str(
        "Generated by `cargo xtask report` from the reports the runs below left under \
         `target/uvfix/`. Do not edit: run the commands, then `cargo xtask report` again. \
         The table is the checkout and machine this page was generated in; each section names \
         its report and when that was written.\n\n",
    );
    let m = &header.machine;
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| generated | {} |", header.generated);
    let _ = writeln!(md, "| checkout | {} |", header.commit);
    let _ = writeln!(md, "| machine | {} CPUs; {}; {} |", m.cpus, m.kernel, m.os);
    md.push('\n');

    let missing = missing(reports);
    if !missing.is_empty() {
        md.push_str("Not found, so not shown:\n\n");
        for (path, made_by) in &missing {
            let _ = writeln!(md, "- `{path}`: made by `{made_by}`");
        }
        md.push('\n');
    }

    let found: Vec<&BaseMatrix> = reports
        .matrices
        .iter()
        .filter_map(|m| match m {
            Looked::Found(m) => Some(m),
            Looked::Missing { .. } => None,
        })
        .collect();
    if !found.is_empty() {
        matrices(&mut md, &found);
    }
    for steps in &reports.steps {
        if let Looked::Found(steps) = steps {
            steps_section(&mut md, steps);
        }
    }
    if let Looked::Found(gates) = &reports.gates {
        let _ = writeln!(
            md,
            "## uv's CI gates per step\n\n`{}`, written {} (each step's gates, with the first \
             error of a failing one, are in `<step>.md` beside it):\n\n{}\n",
            gates.path,
            gates.written,
            gates.data.trim_end()
        );
    }
    if let Looked::Found(bench) = &reports.bench {
        let _ = writeln!(
            md,
            "## Benchmarks\n\n`{}`, written {}:\n\n```text\n{}\n```\n",
            bench.path,
            bench.written,
            bench.data.trim_end()
        );
    }
    md
}

/// `(path, command)` of every report not found.
fn missing(reports: &Reports) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for m in &reports.matrices {
        if let Looked::Missing { path, made_by } = m {
            out.push((path.as_str(), made_by.as_str()));
        }
    }
    for s in &reports.steps {
        if let Looked::Missing { path, made_by } = s {
            out.push((path.as_str(), made_by.as_str()));
        }
    }
    for text in [&reports.bench, &reports.gates] {
        if let Looked::Missing { path, made_by } = text {
            out.push((path.as_str(), made_by.as_str()));
        }
    }
    out
}

/// The matrix of every base found: counts per sandbox × build (bases side by side), then per
/// base its totals, what its cells cost, its failures and its skipped sandboxes.
fn matrices(md: &mut String, found: &[&BaseMatrix]) {
    md.push_str("## The matrix\n\n");
    md.push_str(
        "Counts per sandbox and build (pass: works, proven by a denying canary and an unchanged \
         cache; xfail: fails as the expectation table says it must; FAIL: anything else; skip: \
         the sandbox cannot run there). Every cell is in the run's `matrix.md` and \
         `matrix.json`.\n\n",
    );
    let bases: Vec<BaseResults> = found
        .iter()
        .map(|m| BaseResults {
            base: m.base.clone(),
            results: m.matrix.data.clone(),
        })
        .collect();
    md.push_str(&render_bases(&bases));
    md.push('\n');
    for m in found {
        let results = &m.matrix.data;
        let _ = writeln!(
            md,
            "**Base {}** (`{}`, written {}): {}.\n",
            m.base,
            m.matrix.path,
            m.matrix.written,
            Summary::of(results).line()
        );
        // The wall clock of the run is not in matrix.json: per cell only.
        let cost = Cost::of(results, Duration::ZERO);
        if cost.cells > 0 {
            let _ = writeln!(
                md,
                "Per cell: median {:.2} s, p95 {:.2} s; uv's own run median {:.2} s; the \
                 fixture's overhead over uv's own time, median {:.2}; {} of {} cells warmed a \
                 cache, the rest got a copy.\n",
                cost.median_ms as f64 / 1000.0,
                cost.p95_ms as f64 / 1000.0,
                cost.uv_median_ms as f64 / 1000.0,
                cost.overhead_median,
                cost.warmed,
                cost.cells,
            );
        }
        failures(md, results);
        skipped(md, results);
    }
}

fn failures(md: &mut String, results: &[CellResult]) {
    let fails: Vec<(String, &str)> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(reason) => Some((
                format!("{}/{}/{}/{}", r.uv_label, r.sandbox, r.scenario, r.state),
                reason.as_str(),
            )),
            _ => None,
        })
        .collect();
    if fails.is_empty() {
        return;
    }
    md.push_str("Failures:\n\n");
    for (name, reason) in fails.iter().take(FAILURES_LISTED) {
        let _ = writeln!(md, "- `{name}`: {}", one_line(reason));
    }
    if fails.len() > FAILURES_LISTED {
        let _ = writeln!(
            md,
            "- and {} more (the run's `matrix.md`)",
            fails.len() - FAILURES_LISTED
        );
    }
    md.push('\n');
}

/// Sandboxes of which no cell ran, with the reason (per-cell skips in a sandbox that ran are
/// the cache state's, and counted in the table only).
fn skipped(md: &mut String, results: &[CellResult]) {
    let mut lines = Vec::new();
    for sandbox in super::ordered(results.iter().map(|r| r.sandbox)) {
        let ran = results
            .iter()
            .any(|r| r.sandbox == sandbox && !matches!(r.outcome, Outcome::Skip(_)));
        let reason = results.iter().find_map(|r| match &r.outcome {
            Outcome::Skip(reason) if r.sandbox == sandbox => Some(reason),
            _ => None,
        });
        if let (false, Some(reason)) = (ran, reason) {
            lines.push(format!("- {sandbox}: {}", one_line(reason)));
        }
    }
    if !lines.is_empty() {
        md.push_str("Skipped sandboxes:\n\n");
        for line in lines {
            let _ = writeln!(md, "{line}");
        }
        md.push('\n');
    }
}

fn steps_section(md: &mut String, steps: &Found<Vec<StepRow>>) {
    let _ = writeln!(
        md,
        "## The stack, step by step\n\n`{}`, written {}. Per step, the cells it turns green (failed \
         with the steps below, succeed with it), the cells it turns red (never acceptable), and \
         the cells where it disagrees with the per-step data (`crates/scenario/src/stack.rs`):\n",
        steps.path, steps.written
    );
    md.push_str(
        "| # | step | turns green | turns red | not as the data says |\n|---|---|---:|---:|---:|\n",
    );
    for row in &steps.data {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            row.number,
            row.id,
            row.green.len(),
            row.red.len(),
            row.missing.len() + row.unexpected.len()
        );
    }
    md.push('\n');
}

/// A reason as one Markdown list item: its lines joined, HTML-escaped (a reason may quote
/// `<placeholders>`, which Markdown would take for tags).
fn one_line(reason: &str) -> String {
    super::html_escape(&reason.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::render_json;
    use crate::report::tests::cell;
    use crate::scenario::ScenarioId;
    use crate::state::CacheState;

    fn header() -> Header {
        Header {
            generated: "2026-12-01 10:00 UTC".into(),
            commit: "0123456789ab".into(),
            machine: Machine {
                cpus: 2,
                kernel: "Linux 6.1.0".into(),
                os: "Debian GNU/Linux 12 (bookworm)".into(),
            },
        }
    }

    /// A matrix as `cargo xtask matrix` writes it: through its own JSON, so the fixture is
    /// what a run leaves.
    fn matrix_json() -> Vec<CellResult> {
        let mut cells =
            vec![
            cell("patched", "landlock", ScenarioId::S1, CacheState::Warm, Outcome::Pass),
            cell(
                "pristine",
                "landlock",
                ScenarioId::S1,
                CacheState::Warm,
                Outcome::ExpectedFail,
            ),
            cell(
                "patched",
                "ro-home",
                ScenarioId::S4,
                CacheState::LockMissing,
                Outcome::Fail("exit 2: error: Read-only file system\n  at path \"…/.tmpX\"".into()),
            ),
            cell(
                "pristine",
                "ro-home",
                ScenarioId::S4,
                CacheState::LockMissing,
                Outcome::ExpectedFail,
            ),
            cell(
                "patched",
                "codex",
                ScenarioId::S1,
                CacheState::Warm,
                Outcome::Skip(
                    "sandbox `codex` unavailable here: codex not found in $UVFIX_CODEX, PATH or \
                     /repo/target/uvfix/npm/node_modules/.bin/codex: npm install --prefix \
                     target/uvfix/npm @openai/codex@0.63.0"
                        .into(),
                ),
            ),
        ];
        for (i, c) in cells.iter_mut().enumerate() {
            c.duration_ms = 200 + 100 * i as u64;
            c.timing.uv_ms = 100;
            c.timing.warm_ms = (i % 2 == 0).then_some(50);
        }
        serde_json::from_str(&render_json(&cells).unwrap()).unwrap()
    }

    const STEPS_JSON: &str = r#"[
      {"number": 1, "id": "markers", "green": ["foreign-owner/S1/warm"], "red": [],
       "missing": [], "unexpected": []},
      {"number": 2, "id": "shared-locks", "green": ["landlock/S1/warm", "ro-home/S1/warm"],
       "red": ["none/S2/warm"], "missing": ["ro-root/S1/warm"], "unexpected": []}
    ]"#;

    fn found<T>(path: &str, data: T) -> Found<T> {
        Found {
            path: path.into(),
            written: "2026-12-01 09:58 UTC".into(),
            data,
        }
    }

    #[test]
    fn every_report_found() {
        let reports = Reports {
            matrices: vec![
                Looked::Found(BaseMatrix {
                    base: "0.12.5".into(),
                    matrix: found("target/uvfix/matrix/matrix.json", matrix_json()),
                }),
                Looked::Found(BaseMatrix {
                    base: "0.13.6".into(),
                    matrix: found(
                        "target/uvfix/bases/0.13.6/matrix/matrix.json",
                        matrix_json()[..2].to_vec(),
                    ),
                }),
            ],
            steps: vec![Looked::Found(found(
                "target/uvfix/matrix/steps.json",
                serde_json::from_str(STEPS_JSON).unwrap(),
            ))],
            bench: Looked::Found(found(
                "target/uvfix/bench/bench.txt",
                "warm `uv run python3 -c pass`, 21 runs each, dev profile, median:\n  patched 1.0 ms\n"
                    .to_owned(),
            )),
            gates: Looked::Found(found(
                "target/uvfix/upstream/check/gates/gates.md",
                "| step | check |\n|---|:---:|\n| 0.12.5 | ✓ |\n| markers | **✗** |\n".to_owned(),
            )),
        };
        insta::assert_snapshot!(render_results(&header(), &reports));
    }

    #[test]
    fn one_base_is_named_once_not_in_every_column() {
        let reports = Reports {
            matrices: vec![Looked::Found(BaseMatrix {
                base: "0.12.5".into(),
                matrix: found("target/uvfix/matrix/matrix.json", matrix_json()),
            })],
            steps: vec![],
            bench: Looked::Missing {
                path: "target/uvfix/bench/bench.txt".into(),
                made_by: "cargo xtask bench".into(),
            },
            gates: Looked::Missing {
                path: "target/uvfix/upstream/check/gates/gates.md".into(),
                made_by: "cargo xtask upstream check <astral-sh/uv clone> --gates".into(),
            },
        };
        let md = render_results(&header(), &reports);
        assert!(md.contains("| sandbox | patched | pristine |\n"), "{md}");
        assert!(md.contains("**Base 0.12.5**"), "{md}");
    }

    #[test]
    fn missing_reports_name_the_command_that_makes_them() {
        let reports = Reports {
            matrices: vec![Looked::Missing {
                path: "target/uvfix/matrix/matrix.json".into(),
                made_by: "cargo xtask matrix".into(),
            }],
            steps: vec![Looked::Missing {
                path: "target/uvfix/matrix/steps.json".into(),
                made_by: "cargo xtask matrix --steps".into(),
            }],
            bench: Looked::Missing {
                path: "target/uvfix/bench/bench.txt".into(),
                made_by: "cargo xtask bench".into(),
            },
            gates: Looked::Missing {
                path: "target/uvfix/upstream/check/gates/gates.md".into(),
                made_by: "cargo xtask upstream check <astral-sh/uv clone> --gates".into(),
            },
        };
        insta::assert_snapshot!(render_results(&header(), &reports));
    }

    #[test]
    fn loads_what_exists_and_names_what_does_not() {
        let root = assert_fs::TempDir::new().unwrap();
        let work = root.path().join("target/uvfix");
        fs_err::create_dir_all(work.join("matrix")).unwrap();
        fs_err::write(
            work.join("matrix/matrix.json"),
            render_json(&matrix_json()).unwrap(),
        )
        .unwrap();
        fs_err::write(work.join("matrix/steps.json"), STEPS_JSON).unwrap();
        let other = [("0.13.6".to_owned(), work.join("bases/0.13.6"))];
        let reports = Reports::load(&Locations {
            root: root.path(),
            default_base: "0.12.5",
            work: &work,
            other_bases: &other,
        })
        .unwrap();
        let Looked::Found(default) = &reports.matrices[0] else {
            panic!("the default base's matrix.json exists: {reports:?}");
        };
        assert_eq!(default.matrix.path, "target/uvfix/matrix/matrix.json");
        assert_eq!(default.matrix.data, matrix_json());
        assert_eq!(
            reports.matrices[1],
            Looked::Missing {
                path: "target/uvfix/bases/0.13.6/matrix/matrix.json".into(),
                made_by: "cargo xtask matrix --base 0.13.6".into()
            }
        );
        assert!(matches!(&reports.steps[0], Looked::Found(s) if s.data.len() == 2));
        assert!(
            matches!(&reports.steps[1], Looked::Missing { made_by, .. } if made_by == "ci/steps.sh")
        );
        assert!(matches!(&reports.bench, Looked::Missing { .. }));
        assert!(
            matches!(&reports.gates, Looked::Missing { made_by, .. } if made_by.ends_with("--gates"))
        );
    }

    #[test]
    fn a_report_that_does_not_parse_is_an_error_naming_it() {
        let root = assert_fs::TempDir::new().unwrap();
        let work = root.path().join("target/uvfix");
        fs_err::create_dir_all(work.join("matrix")).unwrap();
        fs_err::write(work.join("matrix/matrix.json"), "{ not a list").unwrap();
        let err = Reports::load(&Locations {
            root: root.path(),
            default_base: "0.12.5",
            work: &work,
            other_bases: &[],
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("matrix/matrix.json is not a report"), "{err}");
    }
}
