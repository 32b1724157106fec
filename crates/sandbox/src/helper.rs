//! The `uvfix-sandbox` helper binary: the part of the fixture that runs *inside* a sandbox.
//!
//! ```text
//! uvfix-sandbox canary DIR [-- PROG [ARGS]...]
//! uvfix-sandbox open-read FILE | open-write FILE
//! uvfix-sandbox landlock [--rw DIR]... [--deny-tcp] -- PROG [ARGS]...
//! ```
//!
//! `canary` prints exactly one report line on stdout (see [`CanaryOutcome`]); given `PROG`, it
//! then execs it, only if the write was denied: the proof and the run share one sandbox start
//! (a second or more for srt and docker). `open-read` and `open-write` open an existing file
//! (never creating or truncating it, never writing) and report the same way: the proof that a
//! cache state's foreign piece really is closed to the uid a cell's uv runs as. `landlock`
//! restricts itself and execs `PROG`, so the restriction is inherited by everything `PROG`
//! starts.
//! Exit codes follow `env(1)`: 125 the helper itself failed, 126/127 `PROG` could not be executed.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Errno;

const USAGE: &str = "usage: uvfix-sandbox canary DIR [-- PROG [ARGS]...]\n       uvfix-sandbox open-read FILE | open-write FILE\n       uvfix-sandbox landlock [--rw DIR]... [--deny-tcp] -- PROG [ARGS]...";

/// Prefix of the canary's report line, so it can be told apart from anything a wrapper prints.
const REPORT: &str = "uvfix-canary";

/// What the canary saw, as printed on one stdout line:
/// `uvfix-canary created PATH`, `uvfix-canary opened PATH`, `uvfix-canary denied errno=N`,
/// `uvfix-canary error MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CanaryOutcome {
    /// The file was created (and removed again): the directory is writable.
    Created(PathBuf),
    /// `open-read`/`open-write`: the existing file was opened (and closed, untouched).
    Opened(PathBuf),
    /// `open(O_CREAT|O_EXCL)` failed with this errno.
    Denied(Errno),
    /// Something that is not an errno went wrong.
    Error(String),
}

impl CanaryOutcome {
    fn render(&self) -> String {
        match self {
            CanaryOutcome::Created(path) => format!("{REPORT} created {}", path.display()),
            CanaryOutcome::Opened(path) => format!("{REPORT} opened {}", path.display()),
            CanaryOutcome::Denied(errno) => format!("{REPORT} denied errno={}", *errno as i32),
            CanaryOutcome::Error(msg) => format!("{REPORT} error {}", msg.replace('\n', " ")),
        }
    }

    pub(crate) fn parse(line: &str) -> Option<CanaryOutcome> {
        let rest = line.trim_end().strip_prefix(REPORT)?.strip_prefix(' ')?;
        if let Some(path) = rest.strip_prefix("created ") {
            Some(CanaryOutcome::Created(PathBuf::from(path)))
        } else if let Some(path) = rest.strip_prefix("opened ") {
            Some(CanaryOutcome::Opened(PathBuf::from(path)))
        } else if let Some(errno) = rest.strip_prefix("denied errno=") {
            errno
                .parse()
                .ok()
                .map(|n| CanaryOutcome::Denied(Errno::from_raw(n)))
        } else {
            rest.strip_prefix("error ")
                .map(|msg| CanaryOutcome::Error(msg.to_owned()))
        }
    }
}

/// Entry point of the `uvfix-sandbox` helper binary (subcommands `landlock …` and `canary DIR`).
pub fn helper_main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let sub = args.next();
    let rest: Vec<OsString> = args.collect();
    match sub.as_ref().and_then(|s| s.to_str()) {
        Some("canary") => match rest.as_slice() {
            [dir] => match canary(Path::new(dir)) {
                CanaryOutcome::Error(_) => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            },
            [dir, dashes, program, args @ ..] if dashes == "--" => match canary(Path::new(dir)) {
                CanaryOutcome::Denied(errno) if crate::Denial::from_errno(errno).is_some() => {
                    exec(program, args)
                }
                // Not denied (or ENOENT, …: a broken setup): the program must not run where
                // the sandbox has not shown that it holds.
                _ => ExitCode::from(125),
            },
            _ => usage_error("canary takes one DIR, then optionally -- PROG [ARGS]..."),
        },
        Some(sub @ ("open-read" | "open-write")) => match rest.as_slice() {
            [file] => match open_existing(Path::new(file), sub == "open-write") {
                CanaryOutcome::Error(_) => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            },
            _ => usage_error(&format!("{sub} takes one FILE")),
        },
        Some("landlock") => match parse_landlock(rest) {
            Ok(parsed) => run_landlock(parsed),
            Err(msg) => usage_error(&msg),
        },
        _ => usage_error("unknown subcommand"),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("uvfix-sandbox: {msg}\n{USAGE}");
    ExitCode::from(125)
}

/// Try to create a fresh file in `dir`. `create_new` is `O_CREAT|O_EXCL`: the question is exactly
/// "may this process add an entry to the directory", which is what uv needs from its cache.
fn canary(dir: &Path) -> CanaryOutcome {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!(
        ".uvfix-canary-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    // std, not fs_err: the raw errno is the whole point, and fs_err's context wrapper hides it.
    let outcome = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => {
            drop(file);
            // Leave no trace in the cache; a failed removal is reported but the verdict stands.
            if let Err(e) = fs_err::remove_file(&path) {
                eprintln!("uvfix-sandbox: canary created but could not remove it: {e}");
            }
            CanaryOutcome::Created(path)
        }
        Err(e) => match e.raw_os_error() {
            Some(errno) => CanaryOutcome::Denied(Errno::from_raw(errno)),
            None => CanaryOutcome::Error(e.to_string()),
        },
    };
    println!("{}", outcome.render());
    // The report must be out before an `exec` replaces this process.
    let _ = std::io::stdout().flush();
    outcome
}

/// Open the existing `file` for reading, or for writing without truncating it, and close it
/// again: nothing is created, nothing written.
fn open_existing(file: &Path, write: bool) -> CanaryOutcome {
    // std, not fs_err, as in `canary`: the raw errno is the answer.
    let outcome = match std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open(file)
    {
        Ok(opened) => {
            drop(opened);
            CanaryOutcome::Opened(file.to_owned())
        }
        Err(e) => match e.raw_os_error() {
            Some(errno) => CanaryOutcome::Denied(Errno::from_raw(errno)),
            None => CanaryOutcome::Error(e.to_string()),
        },
    };
    println!("{}", outcome.render());
    let _ = std::io::stdout().flush();
    outcome
}

#[derive(Debug, PartialEq, Eq)]
struct LandlockArgs {
    rw: Vec<PathBuf>,
    deny_tcp: bool,
    program: OsString,
    args: Vec<OsString>,
}

fn parse_landlock(args: Vec<OsString>) -> Result<LandlockArgs, String> {
    let mut rw = Vec::new();
    let mut deny_tcp = false;
    let mut it = args.into_iter();
    loop {
        let arg = it.next().ok_or("missing `-- PROG`")?;
        match arg.to_str() {
            Some("--rw") => rw.push(PathBuf::from(it.next().ok_or("--rw needs a DIR")?)),
            Some("--deny-tcp") => deny_tcp = true,
            Some("--") => break,
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let program = it.next().ok_or("missing PROG after `--`")?;
    Ok(LandlockArgs {
        rw,
        deny_tcp,
        program,
        args: it.collect(),
    })
}

fn run_landlock(args: LandlockArgs) -> ExitCode {
    if let Err(e) = crate::landlock::restrict_self(&args.rw, args.deny_tcp) {
        // Never fall through to running the program unsandboxed.
        eprintln!("uvfix-sandbox: landlock: {e}");
        return ExitCode::from(125);
    }
    exec(&args.program, &args.args)
}

/// Replace this process with `program`; only returns (with `env(1)`'s codes) if it cannot.
fn exec(program: &OsString, args: &[OsString]) -> ExitCode {
    // PATH lookup uses the (already sandboxed) environment.
    let err = Command::new(program).args(args).exec();
    eprintln!("uvfix-sandbox: cannot execute {program:?}: {err}");
    ExitCode::from(if err.kind() == ErrorKind::NotFound {
        127
    } else {
        126
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_lines_round_trip() {
        for outcome in [
            CanaryOutcome::Created(PathBuf::from("/c/.uvfix-canary-1")),
            CanaryOutcome::Opened(PathBuf::from("/c/.lock")),
            CanaryOutcome::Denied(Errno::EROFS),
            CanaryOutcome::Error("no errno".into()),
        ] {
            assert_eq!(CanaryOutcome::parse(&outcome.render()), Some(outcome));
        }
        assert_eq!(CanaryOutcome::parse("created /x"), None);
        assert_eq!(CanaryOutcome::parse("uvfix-canary denied errno=x"), None);
    }

    #[test]
    fn landlock_args() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let parsed = parse_landlock(os(&[
            "--rw",
            "/w",
            "--deny-tcp",
            "--rw",
            "/dev",
            "--",
            "sh",
            "-c",
            "--rw",
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            LandlockArgs {
                rw: vec!["/w".into(), "/dev".into()],
                deny_tcp: true,
                program: "sh".into(),
                args: os(&["-c", "--rw"]),
            }
        );
        assert!(parse_landlock(os(&["--rw"])).is_err());
        assert!(parse_landlock(os(&["--rw", "/w"])).is_err());
        assert!(parse_landlock(os(&["--",])).is_err());
        assert!(parse_landlock(os(&["sh"])).is_err());
    }
}
