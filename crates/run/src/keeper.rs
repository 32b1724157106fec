//! Under nextest, who holds a store's lock, and who cleans it.
//!
//! nextest's setup script (`cargo xtask cell-store`) creates the store and exits before the
//! first test starts; the tests get the store's path through `$NEXTEST_ENV`, and setup scripts
//! have no teardown. So the setup script hands the store to a *keeper*: a small process of its
//! own (the same binary, [`keep`]) that
//!
//! - holds the store's lock for the nextest run's lifetime: it gets the locked file as its
//!   stdin, so the lock never lapses between the setup script's exit and the keeper's start;
//! - watches the nextest process (found among the setup script's ancestors, told apart from
//!   a later process with its pid by its start time), and when it is gone, however it ended —
//!   all tests done, Ctrl-C, SIGTERM, even SIGKILL — kills what the tests' cells left running,
//!   removes their containers, undoes their preparations and removes the store ([`clean`]);
//! - does the same at once on SIGINT, SIGTERM or SIGHUP sent to it.
//!
//! The keeper is in a process group of its own, so a Ctrl-C in nextest's terminal does not
//! stop it before nextest is done, and its output goes nowhere (nextest would otherwise wait
//! for the setup script's output to end). If the keeper itself is killed, its lock goes with
//! it and the next run's [`crate::sweep`] cleans the store.
//!
//! [`clean`]: crate::clean

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::RunStore;
use crate::procs;

/// The process a store handed over lives as long as: the nearest `cargo-nextest` among our
/// ancestors; without one (run by hand), the nearest ancestor that is not cargo itself (cargo
/// may run `cargo xtask` as a child), i.e. the shell. With its start time, where known.
pub fn owner() -> (u32, Option<u64>) {
    let parent = rustix::process::getppid().map_or(1, |p| p.as_raw_nonzero().get().unsigned_abs());
    let mut fallback = None;
    let mut pid = parent;
    for _ in 0..32 {
        let Some((ppid, comm)) = procs::parent(pid) else {
            break;
        };
        if comm == "cargo-nextest" {
            return (pid, procs::start_time(pid));
        }
        if fallback.is_none() && comm != "cargo" {
            fallback = Some(pid);
        }
        if ppid <= 1 {
            break;
        }
        pid = ppid;
    }
    let pid = fallback.unwrap_or(parent);
    (pid, procs::start_time(pid))
}

/// Start a keeper (`program args… --watch PID [--start TICKS] STORE`, which must call
/// [`keep`]) for `store` and hand it the store's lock. Returns the store's path.
pub fn hand_over(
    store: RunStore,
    program: &Path,
    args: &[&str],
    watch: (u32, Option<u64>),
) -> std::io::Result<PathBuf> {
    let (path, lock) = store.hand_over();
    let mut keeper = Command::new(program);
    keeper.args(args).arg("--watch").arg(watch.0.to_string());
    if let Some(start) = watch.1 {
        keeper.arg("--start").arg(start.to_string());
    }
    keeper
        .arg(&path)
        .stdin(Stdio::from(lock.into_parts().0))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut keeper, 0);
    // Not waited for: it outlives us, and init (or a subreaper) reaps it.
    keeper.spawn()?;
    Ok(path)
}

/// The keeper's life: wait until `watch` (started at `start`) is gone or a signal comes, then
/// clean `store`. Its lock is on stdin, held until this process exits.
pub fn keep(store: &Path, watch: u32, start: Option<u64>) -> Result<(), crate::store::Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        // Without the flag a signal kills the keeper at once: the next run cleans then.
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    let alive = || procs::exists(watch) && (start.is_none() || procs::start_time(watch) == start);
    while alive() && !stop.load(Ordering::SeqCst) {
        // A poll, not a pidfd: the watched process is not our child, and a wake-up every half
        // second costs nothing next to a test run.
        std::thread::sleep(Duration::from_millis(500));
    }
    crate::clean(store)
}
