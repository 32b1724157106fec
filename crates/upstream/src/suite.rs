//! Upstream's own integration tests (`crates/uv/tests`) for the areas the stack touches, run
//! by `cargo xtask upstream check --tests` against each step.
//!
//! A test that fails at a step counts against that step only if it passes on the release the
//! stack starts from: a test that fails there too could not run on this machine (an
//! interpreter it pins is missing, it reaches a host other than PyPI), and is reported as
//! such, with its reason, never as passed.
//!
//! Why the test binaries are run directly instead of through `cargo test` or nextest: as root
//! they must run as an ordinary user (uv's CI runs as one, and `ReadOnlyDirectoryGuard`
//! binds nobody else), and that user cannot run our cargo. libtest's plain output is the
//! stable format; its JSON and JUnit output need a nightly `-Z` flag.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cargo_metadata::Message;
use serde::{Deserialize, Serialize};

use crate::user::{NOBODY, as_nobody, give_to_nobody, is_root, reachable_by_others};

/// One area of upstream's tests: a test target of `crates/uv/tests` and the libtest filters
/// (any of them) that pick its tests; no filter runs the whole target.
pub(crate) struct Area {
    pub target: &'static str,
    pub filters: &'static [&'static str],
}

/// What `--tests` runs: `build/cache*.rs`, and the sync, run, tool and pip-install suites.
pub(crate) const AREAS: &[Area] = &[
    Area {
        target: "build",
        filters: &["cache"],
    },
    Area {
        target: "sync",
        filters: &[],
    },
    Area {
        target: "project",
        filters: &["run::"],
    },
    Area {
        target: "tool",
        filters: &[],
    },
    Area {
        target: "pip_install",
        filters: &[],
    },
];

/// The cargo features the test targets are built with. uv's default `test-defaults` also
/// turns on tests that download managed interpreters or read from R2; where those hosts are
/// not reachable the tests are not compiled rather than counted as failures. `test-git` is
/// on although it needs GitHub: at 0.12.5 `pip_install` does not compile without it (a test
/// outside its `cfg` calls `decode_token`); where GitHub is not reachable, its tests fail on
/// the release as well and are reported as not runnable.
pub(crate) const FEATURES: &str = "test-python,test-pypi,test-python-eol,test-git";

/// One run of libtest: what passed, what failed and why, how many were ignored.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub passed: BTreeSet<String>,
    /// Test name → the first line of its panic message.
    pub failed: BTreeMap<String, String>,
    pub ignored: usize,
    pub seconds: u64,
}

/// The areas named in `names` (all when empty); an unknown name is an error listing them.
pub(crate) fn select(names: &[String]) -> Result<Vec<&'static Area>> {
    if names.is_empty() {
        return Ok(AREAS.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            AREAS.iter().find(|a| a.target == name).with_context(|| {
                let known: Vec<&str> = AREAS.iter().map(|a| a.target).collect();
                format!("no test area `{name}`; the areas are {}", known.join(", "))
            })
        })
        .collect()
}

/// Build the test targets of `areas` (and the `uv` binary they run) in `tree`; the
/// executable of each target, by name. `profile`: a cargo profile, else the dev profile.
pub(crate) fn build(
    mut cargo: Command,
    areas: &[&Area],
    profile: Option<&str>,
) -> Result<BTreeMap<String, PathBuf>> {
    cargo.args([
        "test",
        "--package",
        "uv",
        "--no-default-features",
        "--features",
        FEATURES,
    ]);
    for area in areas {
        cargo.args(["--test", area.target]);
    }
    if let Some(profile) = profile {
        cargo.args(["--profile", profile]);
    }
    let binaries = test_binaries(cargo)
        .context("building upstream's integration tests failed (cargo's errors are above)")?;
    Ok(binaries
        .into_iter()
        .map(|(name, binary)| (name, binary.exe))
        .collect())
}

/// A test executable cargo built, and the directory of its package (where `cargo test`
/// runs it).
pub(crate) struct TestBinary {
    pub exe: PathBuf,
    pub package_dir: PathBuf,
}

/// Run `cargo` (a `cargo test …` without `--no-run`) with `--no-run` and cargo's JSON
/// messages; the test executables it built, by target name. Diagnostics go to stderr,
/// rendered, as cargo prints them.
pub(crate) fn test_binaries(mut cargo: Command) -> Result<BTreeMap<String, TestBinary>> {
    cargo.args(["--no-run", "--message-format=json-render-diagnostics"]);
    let mut child = cargo
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running `{}`", uvfix_process::shown(&cargo)))?;
    let reader = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut binaries = BTreeMap::new();
    for message in Message::parse_stream(reader) {
        if let Message::CompilerArtifact(artifact) = message?
            && artifact.profile.test
            && let Some(exe) = artifact.executable
        {
            let package_dir = artifact
                .manifest_path
                .parent()
                .map(|dir| dir.as_std_path().to_path_buf())
                .unwrap_or_default();
            binaries.insert(
                artifact.target.name.clone(),
                TestBinary {
                    exe: exe.into_std_path_buf(),
                    package_dir,
                },
            );
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed ({status})", uvfix_process::shown(&cargo));
    }
    Ok(binaries)
}

/// Where and as whom the tests run.
pub(crate) struct Runner {
    /// As root: run as uid 65534 through `setpriv`.
    as_nobody: bool,
    /// `HOME` and `TMPDIR` of the tests, owned by the user they run as.
    home: tempfile::TempDir,
    /// `PATH` for the tests: the interpreter directories first.
    path: OsString,
    /// `crates/uv` of the checkout: libtest runs there, as under `cargo test`.
    package_dir: PathBuf,
}

impl Runner {
    pub(crate) fn new(tree: &Path, pythons: &[PathBuf]) -> Result<Self> {
        let as_nobody = is_root();
        let home = tempfile::Builder::new()
            .prefix("uvfix-upstream-tests-")
            .tempdir()?;
        if as_nobody {
            give_to_nobody(home.path())?;
            for dir in std::iter::once(tree).chain(pythons.iter().map(PathBuf::as_path)) {
                // Through symlinks (ci/upstream-pythons.sh links pyenv's versions).
                let real = fs_err::canonicalize(dir)?;
                if !reachable_by_others(&real) {
                    bail!(
                        "uid {NOBODY} cannot enter {}: upstream's tests run as an ordinary \
                         user when we are root. Put the checkout, the target dir and the \
                         interpreters where other users may read them (see \
                         ci/upstream-pythons.sh), or run as a non-root user.",
                        real.display()
                    );
                }
            }
        }
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            pythons
                .iter()
                .cloned()
                .chain(std::env::split_paths(&inherited)),
        )?;
        Ok(Self {
            as_nobody,
            home,
            path,
            package_dir: tree.join("crates").join("uv"),
        })
    }

    /// Run `area`'s tests with `exe`, or only the tests named in `only`; the full output
    /// goes to `log`.
    pub(crate) fn run(
        &self,
        exe: &Path,
        area: &Area,
        only: Option<&[&str]>,
        log: &Path,
    ) -> Result<Outcome> {
        let (args, exact): (Vec<&str>, bool) = match only {
            Some(names) => (names.to_vec(), true),
            None => (area.filters.to_vec(), false),
        };
        self.run_in(exe, &args, exact, &self.package_dir, area.target, log)
    }

    /// Run the test executable `exe` of a package in `package_dir` (where `cargo test` would
    /// run it) with libtest `filters` (`--exact` names when `exact`); `what` names it in
    /// errors, the full output goes to `log`.
    pub(crate) fn run_in(
        &self,
        exe: &Path,
        filters: &[&str],
        exact: bool,
        package_dir: &Path,
        what: &str,
        log: &Path,
    ) -> Result<Outcome> {
        let mut command = if self.as_nobody {
            as_nobody(exe)
        } else {
            Command::new(exe)
        };
        command.args(filters);
        if exact {
            command.arg("--exact");
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        command
            .arg(format!("--test-threads={threads}"))
            .current_dir(package_dir)
            // What `cargo test` sets and uv's harness reads at run time (to find the workspace).
            .env("CARGO_MANIFEST_DIR", package_dir)
            .env("PATH", &self.path)
            .env("HOME", self.home.path())
            .env("TMPDIR", self.home.path())
            // A failing snapshot is a finding to report, not a `.snap.new` to write into
            // the checkout.
            .env("INSTA_UPDATE", "no")
            .env_remove("UV_CACHE_DIR")
            .env_remove("VIRTUAL_ENV");
        let started = Instant::now();
        let output = uvfix_process::run(&mut command, Some(Duration::from_secs(90 * 60)))?;
        let text = format!("{}{}", output.stdout_text(), output.stderr_text());
        fs_err::write(log, &text)?;
        let mut outcome = parse(&text);
        outcome.seconds = started.elapsed().as_secs();
        if output.timed_out {
            bail!("{what} timed out after 90 minutes; see {}", log.display());
        }
        if outcome.passed.is_empty() && outcome.failed.is_empty() && !output.success() {
            bail!(
                "{what} ran no test ({}); see {}",
                output.status_text(),
                log.display()
            );
        }
        Ok(outcome)
    }
}

/// Read libtest's plain output: `test name ... ok|FAILED|ignored` lines, and the first line
/// of each failure's panic message from its `---- name stdout ----` section.
pub(crate) fn parse(text: &str) -> Outcome {
    let mut outcome = Outcome::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        match result.trim() {
            "ok" => drop(outcome.passed.insert(name.to_string())),
            "FAILED" => drop(outcome.failed.insert(name.to_string(), String::new())),
            r if r.starts_with("ignored") => outcome.ignored += 1,
            _ => {}
        }
    }
    for (name, section) in failure_sections(text) {
        if let Some(slot) = outcome.failed.get_mut(name) {
            *slot = reason(&section);
        }
    }
    outcome
}

/// The `---- name stdout ----` sections of libtest's failure report, by test name.
fn failure_sections(text: &str) -> Vec<(&str, Vec<&str>)> {
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            sections.push((name, Vec::new()));
        } else if let Some((_, lines)) = sections.last_mut() {
            lines.push(line);
        }
    }
    sections
}

/// The first line of the panic message; for a command that failed (`Unexpected failure.`),
/// with the first cause uv gave for it, which says more (a host it could not reach).
fn reason(section: &[&str]) -> String {
    let mut after_panic = section
        .iter()
        .skip_while(|l| !l.contains("panicked at"))
        .skip(1)
        .map(|l| l.trim())
        .filter(|l| !l.is_empty());
    let first = after_panic.next().unwrap_or_default().to_string();
    let cause = section
        .iter()
        .map(|l| l.trim())
        .rfind(|l| l.starts_with("Caused by:"));
    match cause {
        Some(cause) if first == "Unexpected failure." => format!("{first} {cause}"),
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
running 4 tests
test cache::cache_init_failure ... FAILED
test cache::clean_all ... ok
test sync::sync_network ... ignored, requires network
test sync::sync_basic ... ok

failures:

---- cache::cache_init_failure stdout ----

thread 'cache::cache_init_failure' panicked at crates/uv/tests/build/cache.rs:339:5:
Snapshot assertion for 'cache_init_failure' failed in line 339
-old snapshot
+new results

failures:
    cache::cache_init_failure

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out
";

    #[test]
    fn reads_libtest_output() {
        let outcome = parse(OUTPUT);
        assert_eq!(
            outcome.passed.iter().collect::<Vec<_>>(),
            ["cache::clean_all", "sync::sync_basic"]
        );
        assert_eq!(outcome.ignored, 1);
        assert_eq!(
            outcome
                .failed
                .get("cache::cache_init_failure")
                .map(String::as_str),
            Some("Snapshot assertion for 'cache_init_failure' failed in line 339")
        );
    }

    #[test]
    fn a_failed_command_is_explained_by_its_last_cause() {
        let text = "test cache_clean::clean ... FAILED\n\
            ---- cache_clean::clean stdout ----\n\
            thread 'x' panicked at crates/uv/tests/build/cache_clean.rs:404:10:\n\
            Unexpected failure.\n\
            error: Request failed after 3 retries\n  \
            Caused by: Failed to fetch: `https://test.pypi.org/simple/iniconfig/`\n  \
            Caused by: dns error\n";
        assert_eq!(
            parse(text).failed["cache_clean::clean"],
            "Unexpected failure. Caused by: dns error"
        );
    }

    #[test]
    fn a_summary_line_is_not_a_test() {
        let outcome = parse("test result: ok. 3 passed; 0 failed\n");
        assert!(outcome.passed.is_empty() && outcome.failed.is_empty());
    }
}
