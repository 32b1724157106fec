//! The fixture's one way to run a command and look at what it did: stdin closed, stdout and
//! stderr captured, the command in its own process group, and an optional time limit after
//! which the whole group is killed (a hung uv, a `docker info` against a dead daemon).
//!
//! Commands whose output a person should see as it happens (cargo's progress) are not run
//! through here: they inherit stderr and are spawned where they are used.
//!
//! Because every command is a group of its own, a Ctrl-C in the terminal does not reach it
//! (the terminal signals its foreground group only), and a SIGTERM to the fixture does not
//! either. So the groups not yet reaped are kept in [`groups`]: an interrupted run stops them
//! all there ([`stop_all`]), and after that no new command starts (only [`run_anyway`], for
//! the cleaning up itself).

#[cfg(unix)]
mod groups;

#[cfg(unix)]
pub use groups::{on_spawn, stop_all, stopping};

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one command did.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// `None`: killed by a signal (or by us on timeout).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for `{command}`: {source}")]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` not started: the run was interrupted")]
    Stopped { command: String },
    #[error("`{command}` failed ({status}){}", detail(stderr))]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

fn detail(stderr: &str) -> String {
    match stderr.trim_end() {
        "" => String::new(),
        text => format!(":\n{text}"),
    }
}

impl Output {
    pub fn success(&self) -> bool {
        !self.timed_out && self.exit_code == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn status_text(&self) -> String {
        match (self.timed_out, self.exit_code, self.signal) {
            (true, _, _) => "timed out".into(),
            (_, Some(c), _) => format!("exit {c}"),
            (_, None, Some(s)) => format!("signal {s}"),
            _ => "unknown status".into(),
        }
    }
}

/// `program arg arg …`, for messages.
pub fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(unix)]
fn signal(status: std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

/// There are no signals on Windows.
#[cfg(not(unix))]
fn signal(_status: std::process::ExitStatus) -> Option<i32> {
    None
}

/// Run `command` to completion (or until `timeout`), capturing its output. Refused with
/// [`Error::Stopped`] once the run was interrupted ([`stop_all`]).
pub fn run(command: &mut Command, timeout: Option<Duration>) -> Result<Output, Error> {
    run_inner(command, timeout, false)
}

/// [`run`], even after [`stop_all`]: for undoing what an interrupted run prepared.
pub fn run_anyway(command: &mut Command, timeout: Option<Duration>) -> Result<Output, Error> {
    run_inner(command, timeout, true)
}

fn run_inner(
    command: &mut Command,
    timeout: Option<Duration>,
    anyway: bool,
) -> Result<Output, Error> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Our own group, so that a timeout kills the command's children (python, bwrap's child)
    // too.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(command, 0);
    let shown = shown(command);
    let wait_error = |source| Error::Wait {
        command: shown.clone(),
        source,
    };
    let spawn = |command: &mut Command| {
        command.spawn().map_err(|source| Error::Spawn {
            command: shown.clone(),
            source,
        })
    };
    #[cfg(unix)]
    let mut child = groups::spawn(command, anyway, spawn).map_err(|e| match e {
        groups::Refused::Stopping => Error::Stopped {
            command: shown.clone(),
        },
        groups::Refused::Spawn(e) => e,
    })?;
    #[cfg(not(unix))]
    let mut child = {
        let _ = anyway;
        spawn(command)?
    };
    let pipes = collect(&mut child);
    let mut timed_out = false;
    let exited = exited_within(&mut child, timeout).map_err(wait_error)?;
    if exited.is_none() {
        timed_out = true;
        // Not reaped yet, so the group named after the child's pid is still its own.
        #[cfg(unix)]
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        );
        let _ = child.kill();
    }
    // The child has exited (or was killed) and is not reaped yet: its group leaves the
    // registry before its pid can be reused.
    #[cfg(unix)]
    groups::forget(child.id());
    let status = child.wait().map_err(wait_error)?;
    let mut out = Output {
        exit_code: status.code(),
        signal: signal(status),
        timed_out,
        ..Output::default()
    };
    // A grandchild that escaped the group could hold a pipe open forever: bound the wait.
    let grace = Instant::now() + Duration::from_secs(5);
    while let Ok((idx, buf)) = pipes.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        if idx == 0 {
            out.stdout = buf;
        } else {
            out.stderr = buf;
        }
    }
    Ok(out)
}

/// `Some(())` once the child has exited (within `limit`, if given), `None` at the limit; either
/// way the child is left unreaped, for the caller. No polling: a poll interval is latency
/// added to every command, and the matrix runs thousands of short ones: even a short poll
/// would be a large part of the fixture's cost per cell.
#[cfg(unix)]
fn exited_within(
    child: &mut std::process::Child,
    limit: Option<Duration>,
) -> std::io::Result<Option<()>> {
    use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};
    let pid = Pid::from_child(child);
    let (tx, rx) = mpsc::channel();
    // `WNOWAIT` only watches: the child is reaped below, by `Child::wait`, on this thread.
    std::thread::spawn(move || {
        let exited = loop {
            match waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        };
        let _ = tx.send(exited.map(drop));
    });
    let exited = match limit {
        Some(limit) => rx.recv_timeout(limit).ok(),
        None => rx.recv().ok(),
    };
    match exited {
        Some(Ok(())) => Ok(Some(())),
        Some(Err(errno)) => Err(errno.into()),
        None => Ok(None),
    }
}

/// Without `waitid`: poll, briefly (here the child is reaped: nothing needs its pid kept).
#[cfg(not(unix))]
fn exited_within(
    child: &mut std::process::Child,
    limit: Option<Duration>,
) -> std::io::Result<Option<()>> {
    let Some(limit) = limit else {
        return child.wait().map(|_| Some(()));
    };
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(Some(()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(child.try_wait()?.map(|_| ()))
}

/// Like [`run`] without a time limit, and a non-zero exit is an error carrying stderr.
pub fn checked(command: &mut Command) -> Result<Output, Error> {
    let shown = shown(command);
    let out = run(command, None)?;
    if out.success() {
        Ok(out)
    } else {
        Err(Error::Failed {
            command: shown,
            status: out.status_text(),
            stderr: out.stderr_text(),
        })
    }
}

/// Read stdout (0) and stderr (1) on threads, so neither pipe can fill up and stall the child.
fn collect(child: &mut std::process::Child) -> mpsc::Receiver<(usize, Vec<u8>)> {
    let (tx, rx) = mpsc::channel();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for (idx, pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        if let Some(mut pipe) = pipe {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send((idx, buf));
            });
        }
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn collects_output_and_status() {
        let out = run(
            &mut sh("echo out; echo err >&2; exit 3"),
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");
        assert!(!out.success());
    }

    #[test]
    fn kills_the_group_on_timeout() {
        // A child that would outlive the timeout, with a grandchild holding the pipes.
        let start = Instant::now();
        let out = run(
            &mut sh("sleep 30 & sleep 30"),
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        assert!(out.timed_out);
        assert_eq!(out.status_text(), "timed out");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    /// The watcher only watches: the exit status comes from `Child::wait` (had the watcher
    /// reaped the child, that wait would fail with ECHILD), and a child still running at the
    /// limit is left running and unreaped, for the caller to kill.
    #[test]
    fn exited_within_leaves_reaping_to_the_caller() {
        let mut quick = sh("exit 7").spawn().unwrap();
        let exited = exited_within(&mut quick, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(exited, Some(()));
        assert_eq!(
            quick.wait().unwrap().code(),
            Some(7),
            "reaped here, not before"
        );

        let mut slow = sh("exec sleep 30").spawn().unwrap();
        assert!(
            exited_within(&mut slow, Some(Duration::from_millis(100)))
                .unwrap()
                .is_none()
        );
        assert!(slow.try_wait().unwrap().is_none(), "still running");
        slow.kill().unwrap();
        assert_eq!(signal(slow.wait().unwrap()), Some(9));
    }

    #[test]
    fn checked_names_the_command_and_its_stderr() {
        let err = checked(&mut sh("echo boom >&2; exit 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/bin/sh -c"), "{err}");
        assert!(err.contains("exit 1"), "{err}");
        assert!(err.contains("boom"), "{err}");
        assert!(matches!(
            checked(&mut Command::new("/nonexistent/prog")),
            Err(Error::Spawn { .. })
        ));
    }
}
