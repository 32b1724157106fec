//! `cargo xtask bench`: the two numbers the patch promises, measured, not asserted in a
//! timed test. `cargo xtask` parses the command line into [`Options`] and calls [`run`].
//!
//! 1. Warm `uv run python3 -c pass`, patched vs pristine, same profile: ratio of medians,
//!    next to the same ratio for pristine against a second copy of itself (the noise floor),
//!    and the instructions each run executes (callgrind), which the machine's load cannot
//!    move. Every binary is timed from a fresh copy in one scratch directory: one and the same
//!    binary times slower from `target/` than from a new copy in `/tmp`, so timing the binaries
//!    where they were built compares their page-cache placement, not their code.
//! 2. Write-intent syscalls on the cache during one warm run (strace: opens with write,
//!    create or truncate flags, mkdir, rename, unlink, link, symlink under the cache root),
//!    with a writable cache and a read-only one (the ro-home sandbox: EROFS).
//! 3. The matrix (module `matrix`): cells per second, cost per cell and the fixture's
//!    overhead against uv's own time, with a warm per cell and with warm-once copies.
//!
//! The uv builds are `$UVFIX_UV_PATCHED` / `$UVFIX_UV_PRISTINE` when set, else built.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod matrix;

use anyhow::{Context, Result, bail};
use uvfix_pipeline::Paths;
use uvfix_pipeline::builder::{self, Variant};
use uvfix_sandbox::{Invocation, Sandbox};
use uvfix_scenario::ScenarioId;
use uvfix_scenario::cell::{CellDirs, UvUnderTest, make_layout};
use uvfix_scenario::plan::Filter;
use uvfix_scenario::python::find_python;
use uvfix_scenario::scenario::{Ctx, uv_env};

/// One uv under test, with a warm cache of its own.
struct Bench {
    /// `patched`, `pristine`, or the control: a second copy of pristine.
    name: String,
    uv: PathBuf,
    dirs: CellDirs,
    python: PathBuf,
}

impl Bench {
    /// `uv run python3 -c pass` with the same environment as a matrix cell.
    fn invocation(&self) -> Invocation {
        let ctx = Ctx {
            layout: &self.dirs.layout,
            wheels: &self.dirs.wheels,
            uv: &self.uv,
            uvx: &self.uv.with_file_name("uvx"),
            python: &self.python,
        };
        Invocation {
            program: self.uv.clone(),
            args: ["run", "python3", "-c", "pass"]
                .map(OsString::from)
                .to_vec(),
            env: uv_env(&ctx),
            cwd: self.dirs.layout.workspace.clone(),
        }
    }

    fn command(&self, sandbox: Sandbox, helper: &Path) -> Command {
        sandbox.command(&self.dirs.layout, helper, &self.invocation())
    }
}

/// What to bench (`cargo xtask bench`'s flags, which say what each one means).
#[derive(Debug, Clone)]
pub struct Options {
    /// Timed runs per variant.
    pub runs: usize,
    /// Only the matrix section.
    pub matrix_only: bool,
    /// No matrix section.
    pub no_matrix: bool,
    /// Sandboxes of the matrix section by name; `None` for all.
    pub matrix_sandbox: Option<Vec<String>>,
    /// Scenarios of the matrix section by name; `all` for every one.
    pub matrix_scenario: Vec<String>,
    /// Cells run at once in the matrix section; `None` for the number of CPUs.
    pub jobs: Option<usize>,
}

/// Run the benchmark sections `args` asks for with the uv builds of `paths` and the sandbox
/// helper `helper`; print the report and write it to `bench/bench.txt` under the base's work
/// directory.
pub fn run(paths: &Paths, args: &Options, helper: &Path) -> Result<()> {
    let bins = binaries(paths)?;
    let mut report = String::new();
    if !args.matrix_only {
        if Command::new("strace").arg("-V").output().is_err() {
            bail!(
                "strace is needed for the syscall count: apt-get install strace (ci/install-deps.sh)"
            );
        }
        // A run's store (`uvfix_run`): removed at the end, also when interrupted or killed.
        let scratch = uvfix_run::RunStore::create(&std::env::temp_dir())?;
        let (benches, control) = warm(&bins, helper, scratch.path())?;
        report.push_str(&timings(&benches, &control, args.runs, helper)?);
        report.push_str(&instructions(&benches, helper, scratch.path())?);
        report.push_str(&syscalls(&benches, helper, scratch.path())?);
        report.push('\n');
        scratch.close()?;
    }
    if args.no_matrix {
        return write_report(paths, &report);
    }
    let uvs: Vec<UvUnderTest> = bins
        .iter()
        .map(|(variant, uv)| {
            let uv = UvUnderTest::new(variant.name().parse()?, uv);
            // The cells stage `uvx` from beside `uv`: say so now, not as failed cells.
            uv.check().map_err(|err| {
                anyhow::anyhow!(
                    "{variant} uv for the matrix section ({err}): `uvx` must sit beside `uv`"
                )
            })?;
            Ok(uv)
        })
        .collect::<Result<_>>()?;
    let filter = matrix_filter(args)?;
    report.push_str(&matrix::section(
        &uvs,
        &filter,
        uvfix_scenario::pool::jobs(args.jobs),
        helper,
    )?);
    write_report(paths, &report)
}

fn write_report(paths: &Paths, report: &str) -> Result<()> {
    print!("{report}");
    let out = paths.base_work().join("bench");
    fs_err::create_dir_all(&out)?;
    fs_err::write(out.join("bench.txt"), report)?;
    eprintln!("uvfix: wrote {}", out.join("bench.txt").display());
    Ok(())
}

/// Each variant's uv: the one handed in (`UVFIX_UV_PATCHED`, …), else built.
fn binaries(paths: &Paths) -> Result<Vec<(Variant, PathBuf)>> {
    let mut out = Vec::new();
    for variant in Variant::ALL {
        let uv = match std::env::var_os(builder::env_var(variant)).filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => builder::uv_path(paths, variant)?,
        };
        out.push((variant, uv));
    }
    Ok(out)
}

/// The matrix section's cells: every sandbox unless chosen, the chosen scenarios.
fn matrix_filter(args: &Options) -> Result<Filter> {
    let sandboxes = match &args.matrix_sandbox {
        Some(names) => Some(
            names
                .iter()
                .map(|n| Sandbox::from_name(n).with_context(|| format!("unknown sandbox `{n}`")))
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let scenarios = if args.matrix_scenario.iter().any(|s| s == "all") {
        None
    } else {
        Some(
            args.matrix_scenario
                .iter()
                .map(|s| s.parse().with_context(|| format!("unknown scenario `{s}`")))
                .collect::<Result<Vec<ScenarioId>>>()?,
        )
    };
    Ok(Filter {
        sandboxes,
        scenarios,
        states: None,
    })
}

/// Warm a cache for each variant under `scratch`, each from its own fresh copy of the binary
/// (see the module comment), and the control: pristine once more, from a second copy.
fn warm(bins: &[(Variant, PathBuf)], helper: &Path, scratch: &Path) -> Result<(Vec<Bench>, Bench)> {
    let python = find_python()?;
    let pristine = bins
        .iter()
        .find(|(variant, _)| *variant == Variant::Pristine)
        .map(|(_, uv)| uv.clone())
        .context("no pristine uv to bench against")?;
    let mut all = Vec::new();
    let named = bins
        .iter()
        .map(|(variant, uv)| (variant.name(), uv.clone()))
        .chain([(CONTROL.to_string(), pristine)]);
    for (name, uv) in named {
        // A directory name without spaces: a venv's scripts carry it in their shebang.
        let root = scratch.join(if name == CONTROL { "control" } else { &name });
        let bin = root.join("bin");
        fs_err::create_dir_all(&bin)?;
        for exe in ["uv", "uvx"] {
            fs_err::copy(uv.with_file_name(exe), bin.join(exe))
                .with_context(|| format!("copying the {name} `{exe}` for the timings"))?;
        }
        // Interrupted: no further command (the bench's run in the terminal's group got the
        // signal too).
        uvfix_run::interrupt::check()?;
        let bench = Bench {
            name: name.clone(),
            uv: bin.join("uv"),
            dirs: make_layout(&root)?,
            python: python.clone(),
        };
        let status = bench
            .command(Sandbox::None, helper)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("warming the {name} cache failed ({status})");
        }
        all.push(bench);
    }
    let control = all.pop().expect("the control was pushed last");
    Ok((all, control))
}

/// The control's name: pristine timed against a second copy of itself.
const CONTROL: &str = "pristine (2nd copy)";

/// Median warm-run times, the ratio patched/pristine, and the control's ratio to pristine.
fn timings(benches: &[Bench], control: &Bench, runs: usize, helper: &Path) -> Result<String> {
    let all: Vec<&Bench> = benches.iter().chain([control]).collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); all.len()];
    for round in 0..runs {
        // Interleave, and rotate who goes first, so drift on a shared machine and whatever the
        // previous run left warm hit every binary alike.
        for offset in 0..all.len() {
            // Interrupted: no further command (the bench's run in the terminal's group got the
            // signal too).
            uvfix_run::interrupt::check()?;
            let at = (round + offset) % all.len();
            let bench = all[at];
            let start = Instant::now();
            let status = bench
                .command(Sandbox::None, helper)
                .stdout(Stdio::null())
                .status()?;
            times[at].push(start.elapsed());
            if !status.success() {
                bail!("{} `uv run python3 -c pass` failed ({status})", bench.name);
            }
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    let mut report =
        format!("warm `uv run python3 -c pass`, {runs} runs each, dev profile, median:\n");
    for (bench, median) in all.iter().zip(&medians) {
        report.push_str(&format!("  {:<20} {:>8.1} ms\n", bench.name, ms(*median)));
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    report.push_str(&format!(
        "  ratio patched/pristine: {:.3} (noise floor, pristine's 2nd copy/pristine: {:.3})\n\n",
        ratio(medians[0], medians[1]),
        ratio(medians[2], medians[1]),
    ));
    Ok(report)
}

/// Instructions one warm run executes in uv's own process (callgrind, children not traced):
/// a count the machine's load does not move, where the wall-clock median on a busy machine
/// does. Skipped, with the reason, without valgrind.
fn instructions(benches: &[Bench], helper: &Path, scratch: &Path) -> Result<String> {
    // Not exactly the same count twice: uv's thread pools split the work differently from run
    // to run, so the spread is printed beside the median.
    const RUNS: usize = 5;
    let mut report = format!(
        "instructions executed by uv in one warm run (valgrind callgrind), median of {RUNS}:\n"
    );
    if Command::new("valgrind").arg("--version").output().is_err() {
        report.push_str("  skipped: valgrind is not installed (apt-get install valgrind)\n\n");
        return Ok(report);
    }
    let mut counts = Vec::new();
    for bench in benches {
        let mut runs = Vec::new();
        for run in 0..RUNS {
            uvfix_run::interrupt::check()?;
            let out = scratch.join(format!("callgrind-{}-{run}.out", bench.name));
            runs.push(callgrind_count(bench, helper, &out)?);
        }
        runs.sort_unstable();
        let count = runs[RUNS / 2];
        report.push_str(&format!(
            "  {:<20} {count:>14}  (runs {} – {})\n",
            bench.name,
            runs[0],
            runs[RUNS - 1]
        ));
        counts.push(count);
    }
    report.push_str(&format!(
        "  ratio patched/pristine: {:.5}\n\n",
        counts[0] as f64 / counts[1] as f64
    ));
    Ok(report)
}

fn callgrind_count(bench: &Bench, helper: &Path, out: &Path) -> Result<u64> {
    let mut valgrind = Command::new("valgrind");
    valgrind
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()));
    let mut command = under(valgrind, &bench.command(Sandbox::None, helper));
    let output = command
        .stdout(Stdio::null())
        .output()
        .context("running valgrind")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "{} under callgrind failed ({}):\n{stderr}",
            bench.name,
            output.status
        );
    }
    collected(&stderr).with_context(|| {
        format!(
            "no `Collected :` line in callgrind's output for {}:\n{stderr}",
            bench.name
        )
    })
}

/// `tool … -- <inner>`, with exactly `inner`'s environment and working directory.
fn under(mut tool: Command, inner: &Command) -> Command {
    tool.arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
    if let Some(dir) = inner.get_current_dir() {
        tool.current_dir(dir);
    }
    tool
}

/// callgrind's total for the first process it traced: `==123== Collected : 398304844`.
fn collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        line.split_once("Collected :")
            .and_then(|(_, n)| n.trim().parse().ok())
    })
}

/// Write-intent syscalls under the cache root, writable and read-only.
fn syscalls(benches: &[Bench], helper: &Path, scratch: &Path) -> Result<String> {
    let mut report =
        String::from("write-intent syscalls under the cache root (strace), one warm run:\n");
    report.push_str("  uv         cache       count  exit\n");
    for bench in benches {
        for sandbox in [Sandbox::None, Sandbox::RoHome] {
            let cache = if sandbox == Sandbox::None {
                "writable"
            } else {
                "read-only"
            };
            if let uvfix_sandbox::Availability::Unavailable(why) = sandbox.availability() {
                report.push_str(&format!(
                    "  {:<9}  {cache:<10}  skipped: {why}\n",
                    bench.name,
                ));
                continue;
            }
            // Interrupted: no further command (the bench's run in the terminal's group got the
            // signal too).
            uvfix_run::interrupt::check()?;
            let (count, status, calls) = strace_writes(bench, sandbox, helper, scratch)?;
            report.push_str(&format!(
                "  {:<9}  {cache:<10}  {count:>5}  {status}\n",
                bench.name,
            ));
            let layout = &bench.dirs.layout;
            let cache = layout.cache.to_string_lossy();
            let workspace = layout.workspace.to_string_lossy();
            for call in calls.iter().take(20) {
                let call = call.replace(&*cache, "$CACHE").replace(&*workspace, "$WS");
                report.push_str(&format!("      {call}\n"));
            }
        }
    }
    Ok(report)
}

fn strace_writes(
    bench: &Bench,
    sandbox: Sandbox,
    helper: &Path,
    scratch: &Path,
) -> Result<(usize, String, Vec<String>)> {
    let log = scratch.join(format!("strace-{}-{}.log", bench.name, sandbox.name()));
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-y", "-s", "4096", "-o"])
        .arg(&log)
        .args(["-e", "trace=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,link,linkat,symlink,symlinkat"]);
    let status = under(strace, &bench.command(sandbox, helper))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running strace")?;
    let text = fs_err::read_to_string(&log)?;
    let calls: Vec<String> = text
        .lines()
        .filter(|line| write_intent_under(line, &bench.dirs.layout.cache))
        .map(|line| {
            line.split_once(' ')
                .map_or(line, |(_, rest)| rest.trim_start())
                .to_string()
        })
        .collect();
    let exit = status
        .code()
        .map_or_else(|| status.to_string(), |c| format!("exit {c}"));
    Ok((calls.len(), exit, calls))
}

/// Whether one strace line (`-f -y` format) is a write-intent call on a path under `cache`.
fn write_intent_under(line: &str, cache: &Path) -> bool {
    let Some((_pid, call)) = line.split_once(' ') else {
        return false;
    };
    let call = call.trim_start();
    let Some((name, args)) = call.split_once('(') else {
        return false;
    };
    let writes = match name {
        "open" | "openat" | "openat2" => ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
            .iter()
            .any(|flag| args.contains(flag)),
        "creat" | "mkdir" | "mkdirat" | "rename" | "renameat" | "renameat2" | "unlink"
        | "unlinkat" | "rmdir" | "link" | "linkat" | "symlink" | "symlinkat" => true,
        _ => false,
    };
    writes && paths_of(args).iter().any(|p| p.starts_with(cache))
}

/// The paths a call names: each quoted argument, made absolute with the `<dir>` strace -y
/// prints after the directory fd that precedes it (or AT_FDCWD's).
fn paths_of(args: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dir: Option<&str> = None;
    let mut rest = args;
    while let Some(at) = rest.find(['<', '"']) {
        let (open, close) = if rest[at..].starts_with('<') {
            ('<', '>')
        } else {
            ('"', '"')
        };
        let body = &rest[at + 1..];
        let Some(end) = body.find(close) else { break };
        let value = &body[..end];
        if open == '<' {
            dir = Some(value);
        } else {
            let path = Path::new(value);
            out.push(match dir {
                Some(dir) if path.is_relative() => Path::new(dir).join(path),
                _ => path.to_path_buf(),
            });
            dir = None;
        }
        rest = &body[end + 1..];
    }
    out
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CACHE: &str = "/t/home/.cache/uv";

    #[test]
    fn callgrind_total_is_read_from_its_summary() {
        let stderr = "==7== Callgrind, a call-graph generating cache profiler\n\
                      ==7== Events    : Ir\n==7== Collected : 398304844\n==7==\n\
                      ==7== I   refs:      398,304,844\n";
        assert_eq!(collected(stderr), Some(398_304_844));
        assert_eq!(collected("==7== Events    : Ir\n"), None);
    }

    #[test]
    fn write_intent_is_found_under_the_cache_only() {
        let cache = Path::new(CACHE);
        for (line, expected) in [
            (
                r#"7 openat(AT_FDCWD</w>, "/t/home/.cache/uv/.lock", O_RDWR|O_CREAT|O_CLOEXEC, 0666) = 3</t/home/.cache/uv/.lock>"#,
                true,
            ),
            (
                r#"7 openat(AT_FDCWD</w>, "/t/home/.cache/uv/.lock", O_RDONLY|O_CLOEXEC) = 3"#,
                false,
            ),
            (
                r#"7 openat(AT_FDCWD</w>, "/w/.venv/pyvenv.cfg", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3"#,
                false,
            ),
            (
                r#"7 mkdir("/t/home/.cache/uv/sdists-v9", 0777) = -1 EEXIST (File exists)"#,
                true,
            ),
            (
                r#"7 unlinkat(5</t/home/.cache/uv/builds-v0>, ".tmpAbc", 0) = 0"#,
                true,
            ),
            (
                r#"7 openat(AT_FDCWD</t/home/.cache/uv>, ".gitignore", O_WRONLY|O_CREAT, 0666) = -1 EROFS"#,
                true,
            ),
            (
                r#"7 renameat2(AT_FDCWD</w>, "/tmp/x", AT_FDCWD</w>, "/t/home/.cache/uv/y", RENAME_NOREPLACE) = 0"#,
                true,
            ),
            (r#"7 +++ exited with 0 +++"#, false),
            (r#"7684  mkdir("/t/home/.cache/uv", 0777) = 0"#, true),
        ] {
            assert_eq!(write_intent_under(line, cache), expected, "{line}");
        }
    }
}
