//! `cargo xtask upstream check PATH --gates`: what uv's CI runs on a pull request, at the
//! revision the stack starts from and after every step of it.
//!
//! The gates mirror astral-sh/uv's own workflows (read at 0.12.5):
//!
//! - `check-fmt.yml`, job `rust`: `cargo fmt --all --check`;
//! - `check-lint.yml`, job `clippy-ubuntu`: `cargo clippy --workspace --all-targets
//!   --all-features --locked -- -D warnings`, with uv's `[workspace.lints]` and `clippy.toml`
//!   (they are the checkout's own files, so running in the checkout uses them). `--locked` is
//!   split off into the `lock` gate (`cargo metadata --locked`): a step that adds a dependency
//!   without the `Cargo.lock` change fails there, and the compile and lint gates still say
//!   whether the code builds, instead of all stopping at the lock;
//! - `test.yml`, job `cargo-test-linux`, runs `cargo nextest run --workspace` with nightly-only
//!   flags (`-Z panic-abort-tests`, profile `fast-build-nightly`) and test features; here the
//!   workspace is compiled by `cargo check --workspace --all-targets` (what cannot compile
//!   cannot test), and tests run for what the step touches: the unit tests (`--lib`) of the
//!   crates whose sources it changes, and `crates/uv/tests/build/cache.rs` (the `build`
//!   target's `cache::` tests, which the stack extends), built and run as the `--tests`
//!   machinery does ([`super::suite`]: as uid 65534 when we are root, as uv's CI runs them
//!   as an ordinary user).
//!
//! Every gate is one command (or one build plus its test binaries) whose output goes to a log;
//! the record keeps what it observed ([`super::gate_records`]). All steps share one target
//! dir and one worktree that is reset between them, so a step recompiles only what the
//! patches touch and what depends on it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use uvfix_pipeline::Paths;

use super::checkout::Checkout;
use super::command::output;
pub(crate) use super::gate_records::Gate;
use super::gate_records::{self, Key, Observed, StepRecord, Store};
use super::git::git;
use super::integration::{chosen_steps, defines_profile, interpreters};
use super::suite::{self, Area, Runner};
use super::toolchain::Chosen;
use super::workdir::{self, display};

/// What `--gates` was asked for.
pub(crate) struct Request {
    /// Only these step ids (the base always).
    pub only_steps: Vec<String>,
    /// Only these gates; all when empty.
    pub gates: Vec<Gate>,
    /// Interpreter directories for the tests' `PATH`.
    pub pythons: Vec<PathBuf>,
}

/// `crates/uv/tests/build/cache.rs`: its module's tests in the `build` target.
const CACHE_TESTS: Area = Area {
    target: "build",
    filters: &["cache::"],
};

/// Lines of a failing command's output kept in its record.
const EXCERPT_LINES: usize = 30;

pub(crate) fn run(
    paths: &Paths,
    checkout: &Checkout,
    chosen: &Chosen,
    request: &Request,
) -> Result<()> {
    let out = workdir::dir(paths).join("check").join("gates");
    let logs = out.join("logs");
    fs_err::create_dir_all(&logs)?;
    let gates: Vec<Gate> = match request.gates.is_empty() {
        true => Gate::ALL.to_vec(),
        false => request
            .gates
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    needs_subcommands(chosen, &gates)?;
    let ids: Vec<&str> = checkout.exported.iter().map(|p| p.step.as_str()).collect();
    let mut counts = chosen_steps(&ids, &request.only_steps)?;
    counts.insert(0, 0);
    let keys = keys(checkout, chosen)?;
    let store = Store::new(&out);
    let unit_crates: Vec<Vec<String>> = checkout
        .exported
        .iter()
        .map(|patch| crates_with_sources(&patch.file))
        .collect::<Result<_>>()?;
    let runner = match gates.iter().any(|g| matches!(g, Gate::Unit | Gate::Cache)) {
        true => Some(Runner::new(
            &checkout.tree,
            &interpreters(paths, &request.pythons)?,
        )?),
        false => None,
    };
    let profile = defines_profile(&checkout.tree, "no-debug").then_some("no-debug");
    let mut ran = Vec::new();
    for count in counts {
        let step = checkout.step_name(count);
        let previous = store.current(&step, &keys[count])?;
        // The base does not change with the stack: what it measured stays current.
        let to_run: Vec<Gate> = gates
            .iter()
            .copied()
            .filter(|gate| {
                count > 0
                    || previous
                        .as_ref()
                        .is_none_or(|p| !p.gates.iter().any(|o| o.gate == *gate))
            })
            .collect();
        if to_run.is_empty() {
            println!("uvfix: gates at the base {step}: reusing its current record");
            ran.push(count);
            continue;
        }
        println!(
            "uvfix: uv's CI gates at {} ({count} patch(es)): {}",
            step,
            to_run
                .iter()
                .map(|g| g.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        checkout.at_step(paths, count)?;
        let crates: Vec<String> = match count {
            // The base runs every crate any step tests, so each step has its baseline.
            0 => unit_crates
                .iter()
                .flatten()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            n => unit_crates[n - 1].clone(),
        };
        let at = StepGates {
            paths,
            checkout,
            chosen,
            runner: runner.as_ref(),
            logs: &logs,
            count,
            profile,
        };
        let mut observed: Vec<Observed> = previous
            .map(|p| p.gates)
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !to_run.contains(&o.gate))
            .collect();
        for gate in &to_run {
            let result = at.run(*gate, &crates)?;
            println!(
                "  {:<7} {}  ({} s, log {})",
                gate.name(),
                match result.ok {
                    true => "ok".to_string(),
                    false => format!(
                        "FAILED: {}",
                        result
                            .excerpt
                            .first()
                            .cloned()
                            .unwrap_or_else(|| format!("{} test(s) failed", result.failed.len()))
                    ),
                },
                result.seconds,
                display(paths, &result.log)
            );
            observed.push(result);
        }
        observed.sort_by_key(|o| o.gate);
        let record = StepRecord {
            key: keys[count].clone(),
            step: step.clone(),
            count,
            ran: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            gates: observed,
        };
        store.write(&record)?;
        ran.push(count);
        // After every step, so an interrupted run still leaves what it measured.
        report(&out, checkout, &keys, &store, &gates)?;
    }
    let grid = report(&out, checkout, &keys, &store, &gates)?;
    println!("{grid}");
    println!(
        "uvfix: gate reports in {} (gates.md, <step>.md; logs/)",
        display(paths, &out)
    );
    let base = store.current(&checkout.step_name(0), &keys[0])?;
    let mut failures = Vec::new();
    for count in ran.into_iter().filter(|&c| c > 0) {
        if let Some(record) = store.current(&checkout.step_name(count), &keys[count])? {
            failures.extend(gate_records::regressions(&record, base.as_ref()));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} gate(s) fail at a step and pass on astral-sh/uv {}:\n  {}",
            failures.len(),
            checkout.label,
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// Each count's key (0: the base): the checkout, the toolchain, the patches up to it.
fn keys(checkout: &Checkout, chosen: &Chosen) -> Result<Vec<Key>> {
    let toolchain = format!("rustc {}", chosen.toolchain.version);
    let mut patches = Vec::new();
    let mut keys = vec![Key {
        checkout: checkout.label.clone(),
        toolchain: toolchain.clone(),
        patches: Vec::new(),
    }];
    for patch in &checkout.exported {
        patches.push(uvfix_pipeline::sha256_file(&patch.file)?);
        keys.push(Key {
            checkout: checkout.label.clone(),
            toolchain: toolchain.clone(),
            patches: patches.clone(),
        });
    }
    Ok(keys)
}

/// `<step>.md` for every step with a current record, and `gates.md`, the grid; returns the grid.
fn report(
    out: &Path,
    checkout: &Checkout,
    keys: &[Key],
    store: &Store,
    gates: &[Gate],
) -> Result<String> {
    let base = store.current(&checkout.step_name(0), &keys[0])?;
    let mut rows = Vec::new();
    for (count, key) in keys.iter().enumerate() {
        let step = checkout.step_name(count);
        let record = store.current(&step, key)?;
        let file = out.join(format!(
            "{}.md",
            match count {
                0 => "base",
                _ => step.as_str(),
            }
        ));
        match &record {
            Some(record) => {
                fs_err::write(&file, gate_records::step_markdown(record, base.as_ref()))?
            }
            None if file.exists() => fs_err::remove_file(&file)?,
            None => {}
        }
        rows.push((step, record));
    }
    let columns = gate_records::columns(&rows, gates);
    let grid = gate_records::grid_markdown(&checkout.label, &rows, base.as_ref(), &columns);
    fs_err::write(out.join("gates.md"), &grid)?;
    Ok(grid)
}

/// `cargo fmt` and `cargo clippy` must exist for the toolchain before anything runs; rustup
/// adds them where it can (uv's CI does `rustup component add clippy` too).
fn needs_subcommands(chosen: &Chosen, gates: &[Gate]) -> Result<()> {
    let toolchain = &chosen.toolchain;
    for (gate, subcommand, component) in [
        (Gate::Fmt, "fmt", "rustfmt"),
        (Gate::Clippy, "clippy", "clippy"),
    ] {
        if gates.contains(&gate) && !toolchain.has_subcommand(subcommand) {
            toolchain.add_components(&[component]).with_context(|| {
                format!(
                    "the `{}` gate needs `cargo {subcommand}` for {}",
                    gate.name(),
                    toolchain.describe()
                )
            })?;
        }
    }
    Ok(())
}

/// The crates whose sources (anything but `tests/`) an exported mail changes: their unit tests
/// are the step's. A change to `crates/uv/tests/` alone is the `cache` gate's.
pub(crate) fn crates_with_sources(mail: &Path) -> Result<Vec<String>> {
    let text = fs_err::read_to_string(mail)?;
    let paths = super::diff::file_paths(&text)
        .with_context(|| format!("{}: reading its diff", mail.display()))?;
    Ok(paths
        .iter()
        .filter_map(|path| {
            let (krate, inner) = path.strip_prefix("crates/")?.split_once('/')?;
            (!inner.starts_with("tests/")).then(|| krate.to_string())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// The gates of one step, in its worktree.
struct StepGates<'a> {
    paths: &'a Paths,
    checkout: &'a Checkout,
    chosen: &'a Chosen,
    runner: Option<&'a Runner>,
    logs: &'a Path,
    count: usize,
    profile: Option<&'a str>,
}

impl StepGates<'_> {
    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{:02}-{name}.log", self.count))
    }

    fn cargo(&self, args: &[&str]) -> Command {
        let mut cargo = self
            .checkout
            .cargo(self.paths, &self.chosen.toolchain, args);
        cargo.env("CARGO_TERM_COLOR", "never");
        cargo
    }

    fn run(&self, gate: Gate, crates: &[String]) -> Result<Observed> {
        let started = Instant::now();
        let log = self.log(gate.name());
        let mut observed = match gate {
            // check-lint.yml's `--locked`, on its own.
            Gate::Lock => self.command(
                gate,
                &["metadata", "--locked", "--format-version", "1"],
                &log,
            )?,
            // check-fmt.yml.
            Gate::Fmt => self.command(gate, &["fmt", "--all", "--check"], &log)?,
            Gate::Check => self.command(gate, &["check", "--workspace", "--all-targets"], &log)?,
            // check-lint.yml, clippy-ubuntu (`--locked`: the lock gate).
            Gate::Clippy => self.command(
                gate,
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
                &log,
            )?,
            Gate::Unit => self.unit_tests(crates, &log)?,
            Gate::Cache => self.cache_tests(&log)?,
        };
        observed.seconds = started.elapsed().as_secs();
        Ok(observed)
    }

    /// One cargo command; its output to `log`.
    fn command(&self, gate: Gate, args: &[&str], log: &Path) -> Result<Observed> {
        let mut cargo = self.cargo(args);
        let shown = format!("cargo {}", args.join(" "));
        let out = uvfix_process::run(&mut cargo, None)
            .with_context(|| format!("running `{shown}` in {}", self.checkout.tree.display()))?;
        let stdout = out.stdout_text();
        let stderr = out.stderr_text();
        // `cargo metadata` prints the whole graph on success: the log keeps only what matters.
        let kept = match gate {
            Gate::Lock if out.success() => String::new(),
            _ => stdout.clone(),
        };
        fs_err::write(log, format!("$ {shown}\n{kept}{stderr}"))?;
        let mut excerpt = match out.success() {
            true => Vec::new(),
            false => match gate {
                Gate::Fmt => stdout
                    .lines()
                    .take(EXCERPT_LINES)
                    .map(str::to_string)
                    .collect(),
                _ => excerpt(&stderr),
            },
        };
        if gate == Gate::Lock && !out.success() {
            excerpt.extend(self.lock_change()?);
        }
        Ok(Observed {
            gate,
            command: shown,
            ok: out.success(),
            passed: 0,
            ignored: 0,
            failed: Default::default(),
            excerpt,
            seconds: 0,
            log: log.to_path_buf(),
        })
    }

    /// The change to `Cargo.lock` the step needs (cargo's `--locked` error does not say), made
    /// offline in the worktree, which the next step resets anyway.
    fn lock_change(&self) -> Result<Vec<String>> {
        let mut cargo = self.cargo(&["metadata", "--offline", "--format-version", "1"]);
        let updated = uvfix_process::run(&mut cargo, None)?;
        if !updated.success() {
            return Ok(Vec::new());
        }
        let diff = output(git(&self.checkout.tree).args([
            "diff",
            "--unified=0",
            "--no-color",
            "--",
            "Cargo.lock",
        ]))?;
        let mut lines = vec!["The Cargo.lock change the step needs (`git diff -U0`):".to_string()];
        lines.extend(
            diff.lines()
                .filter(|l| !l.starts_with("diff --git") && !l.starts_with("index "))
                .take(EXCERPT_LINES)
                .map(str::to_string),
        );
        Ok(lines)
    }

    /// `cargo test --lib -p …` of `crates`: built, then each binary run by the runner.
    fn unit_tests(&self, crates: &[String], log: &Path) -> Result<Observed> {
        let mut args = vec!["test", "--lib"];
        for krate in crates {
            args.extend(["-p", krate.as_str()]);
        }
        if let Some(profile) = self.profile {
            args.extend(["--profile", profile]);
        }
        let shown = format!("cargo {}", args.join(" "));
        if crates.is_empty() {
            fs_err::write(log, "no crate's sources changed: no unit tests to run\n")?;
            return Ok(tests_observed(
                Gate::Unit,
                "(no crate's sources changed)".into(),
                log,
            ));
        }
        let mut cargo = self.cargo(&args);
        cargo.stderr(Stdio::from(fs_err::File::create(log)?.into_parts().0));
        let binaries = match suite::test_binaries(cargo) {
            Ok(binaries) => binaries,
            Err(err) => return build_failed(Gate::Unit, shown, log, &err),
        };
        let mut observed = tests_observed(Gate::Unit, shown, log);
        for (target, binary) in &binaries {
            let test_log = self.log(&format!("unit-{target}"));
            let runner = self.runner.expect("a runner for test gates");
            match runner.run_in(
                &binary.exe,
                &[],
                false,
                &binary.package_dir,
                target,
                &test_log,
            ) {
                Ok(outcome) => add_outcome(&mut observed, target, outcome),
                Err(err) => {
                    observed.ok = false;
                    observed.excerpt.push(format!("{target}: {err:#}"));
                }
            }
        }
        Ok(observed)
    }

    /// `crates/uv/tests/build/cache.rs`, as `--tests` builds and runs upstream's tests.
    fn cache_tests(&self, log: &Path) -> Result<Observed> {
        let shown = format!(
            "cargo test -p uv --no-default-features --features {} --test {}{} -- {}",
            suite::FEATURES,
            CACHE_TESTS.target,
            self.profile
                .map(|p| format!(" --profile {p}"))
                .unwrap_or_default(),
            CACHE_TESTS.filters.join(" ")
        );
        let mut cargo = self.cargo(&[]);
        cargo.stderr(Stdio::from(fs_err::File::create(log)?.into_parts().0));
        let binaries = match suite::build(cargo, &[&CACHE_TESTS], self.profile) {
            Ok(binaries) => binaries,
            Err(err) => return build_failed(Gate::Cache, shown, log, &err),
        };
        let Some(exe) = binaries.get(CACHE_TESTS.target) else {
            bail!("cargo built no `{}` test binary", CACHE_TESTS.target);
        };
        let mut observed = tests_observed(Gate::Cache, shown, log);
        let test_log = self.log("cache-tests");
        let runner = self.runner.expect("a runner for test gates");
        match runner.run(exe, &CACHE_TESTS, None, &test_log) {
            Ok(outcome) => add_outcome(&mut observed, "", outcome),
            Err(err) => {
                observed.ok = false;
                observed.excerpt.push(format!("{err:#}"));
            }
        }
        Ok(observed)
    }
}

fn tests_observed(gate: Gate, command: String, log: &Path) -> Observed {
    Observed {
        gate,
        command,
        ok: true,
        passed: 0,
        ignored: 0,
        failed: Default::default(),
        excerpt: Vec::new(),
        seconds: 0,
        log: log.to_path_buf(),
    }
}

/// A test build that failed: its compiler errors, from the log cargo wrote them to.
fn build_failed(gate: Gate, command: String, log: &Path, err: &anyhow::Error) -> Result<Observed> {
    let text = fs_err::read_to_string(log).unwrap_or_default();
    let mut lines = excerpt(&text);
    if lines.is_empty() {
        lines.push(format!("{err:#}"));
    }
    Ok(Observed {
        ok: false,
        excerpt: lines,
        ..tests_observed(gate, command, log)
    })
}

/// Add one test binary's outcome (`prefix`: its target, to tell the crates' tests apart).
fn add_outcome(observed: &mut Observed, prefix: &str, outcome: suite::Outcome) {
    observed.passed += outcome.passed.len();
    observed.ignored += outcome.ignored;
    for (name, why) in outcome.failed {
        let name = match prefix {
            "" => name,
            prefix => format!("{prefix}: {name}"),
        };
        observed.failed.insert(name, why);
    }
    observed.ok = observed.ok && observed.failed.is_empty();
}

/// The first error of cargo's output and what follows it, up to [`EXCERPT_LINES`] lines:
/// enough to name the file, the line and the message.
fn excerpt(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("error")) else {
        return lines
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(|l| l.to_string())
            .collect();
    };
    let mut kept = Vec::new();
    // cargo's progress lines interleave with the diagnostics: they say nothing about the error.
    let progress = ["Checking ", "Compiling ", "Building ", "Blocking "];
    for line in &lines[start..] {
        if progress.iter().any(|p| line.trim_start().starts_with(p)) {
            continue;
        }
        kept.push(line.to_string());
        if kept.len() >= EXCERPT_LINES || line.starts_with("error: could not compile") {
            break;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_compiler_error_is_kept() {
        let text = "    Checking uv-installer v0.0.72\n\
            warning: unused import\n\
            error[E0308]: mismatched types\n   \
            --> crates/uv-dev/src/compile.rs:39:9\n    \
            |\n\
            39 |         cache.root(),\n    \
            |         ^^^^^^^^^^^^ expected `&Cache`, found `&Path`\n\n    \
            Checking uv v0.12.5 (/tmp/uv/crates/uv)\n\
            error: could not compile `uv-dev` (lib) due to 1 previous error\n\
            warning: build failed, waiting for other jobs to finish...\n";
        let kept = excerpt(text);
        assert_eq!(kept.first().unwrap(), "error[E0308]: mismatched types");
        assert_eq!(
            kept.last().unwrap(),
            "error: could not compile `uv-dev` (lib) due to 1 previous error"
        );
        assert!(
            kept.iter()
                .any(|l| l.contains("crates/uv-dev/src/compile.rs:39:9"))
        );
        assert!(!kept.iter().any(|l| l.contains("Checking")), "{kept:?}");
    }

    #[test]
    fn unit_tests_follow_sources_not_integration_tests() {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("0004.patch");
        fs_err::write(
            &mail,
            "Subject: x\n---\n\
             diff --git a/crates/uv-cache/src/lib.rs b/crates/uv-cache/src/lib.rs\n\
             diff --git a/crates/uv-installer/src/compile.rs b/crates/uv-installer/src/compile.rs\n\
             diff --git a/crates/uv/tests/build/cache.rs b/crates/uv/tests/build/cache.rs\n\
             diff --git a/crates/uv-cache/Cargo.toml b/crates/uv-cache/Cargo.toml\n",
        )
        .unwrap();
        assert_eq!(
            crates_with_sources(&mail).unwrap(),
            ["uv-cache", "uv-installer"]
        );
    }
}
