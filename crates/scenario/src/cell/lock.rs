//! The lock probe: whenever uv goes ahead holding the cache lock, `uv cache clean` run by the
//! cache's owner, unsandboxed, must wait for it; uv goes ahead without the lock only where the
//! cache refused a write.
//!
//! The S1 cell of every (build, sandbox, state) runs it after its scenario, once uv has shown
//! that it goes ahead there (a cell whose uv stopped has nothing to race):
//!
//! ```text
//! 1. uv run python3 -c <print "holding", then wait for a release file>   (the cell's sandbox)
//! 2. /proc/locks: does a lock on the cache's `.lock` (device and inode) exist now?  → held
//! 3. uv cache clean, as the cache's owner, outside any sandbox
//! 4. /proc/locks again, until clean is blocked on `.lock` ("->" a waiting request) or exits
//! 5. release; uv's run must end well; clean ends (it clears the cache once it got the lock)
//! ```
//!
//! `/proc/locks` is the kernel's word, so the verdict needs no timing: not "clean took
//! longer than the hold" (a slow machine passes a clean that never waited) but "clean's
//! exclusive request was queued behind a lock uv held". uv's own "waiting for other uv
//! processes" line is no proof: `uv cache clean` prints it before it has even opened `.lock`,
//! and also when it then fails to open it (a foreign `.lock`).
//!
//! The held run is not behind the canary again: the cell's scenario run, just before, proved
//! this sandbox's denial on this very cache.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use uvfix_sandbox::owner;

/// What the probe saw, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockReport {
    /// uv held a lock on the cache's `.lock` while it ran.
    pub held: bool,
    /// What `uv cache clean` did meanwhile.
    pub clean: String,
    /// The verdict in words.
    pub verdict: String,
    /// The probe's FAIL.
    pub fail: bool,
}

impl std::fmt::Display for LockReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lock: {}", self.verdict)
    }
}

/// Why the probe cannot run here: it reads the kernel's lock table, which only Linux shows
/// (`/proc/locks`); macOS runners report the probe as not run.
pub(crate) fn unavailable() -> Option<String> {
    (!Path::new("/proc/locks").exists())
        .then(|| "there is no /proc/locks here to see the locks in (Linux only)".into())
}

/// A flock on an inode, from one `/proc/locks` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flock {
    /// A request queued behind another lock (`->`).
    pub blocked: bool,
    pub write: bool,
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
}

/// The `FLOCK` lines of `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 fe:00:5685543 0 EOF`,
/// a waiting request as `1: -> FLOCK  ADVISORY  WRITE …`).
pub(crate) fn flocks(text: &str) -> Vec<Flock> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1).peekable();
            let blocked = words.next_if_eq(&"->").is_some();
            if words.next()? != "FLOCK" {
                return None;
            }
            let _advisory = words.next()?;
            let write = words.next()? == "WRITE";
            let _pid = words.next()?;
            let mut id = words.next()?.split(':');
            Some(Flock {
                blocked,
                write,
                major: u32::from_str_radix(id.next()?, 16).ok()?,
                minor: u32::from_str_radix(id.next()?, 16).ok()?,
                inode: id.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// The locks on `path`'s inode now.
fn locks_on(path: &Path) -> anyhow::Result<Vec<Flock>> {
    let meta = match fs_err::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let (major, minor) = (rustix::fs::major(meta.dev()), rustix::fs::minor(meta.dev()));
    Ok(flocks(&fs_err::read_to_string("/proc/locks")?)
        .into_iter()
        .filter(|l| l.major == major && l.minor == minor && l.inode == meta.ino())
        .collect())
}

/// A child in its own process group, killed with its group unless it was waited for.
struct Spawned {
    child: Child,
    waited: bool,
}

impl Spawned {
    fn spawn(mut command: Command, what: &str) -> anyhow::Result<Self> {
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        Ok(Self {
            child,
            waited: false,
        })
    }

    fn try_exit(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let status = self.child.try_wait()?;
        self.waited |= status.is_some();
        Ok(status)
    }

    fn wait_for(&mut self, limit: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_exit()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.waited {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&self.child),
                rustix::process::Signal::KILL,
            );
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How often `/proc/locks` and the children are looked at while the probe waits.
const POLL: Duration = Duration::from_millis(20);

/// The python the held run executes: say so, then wait for `release` (bounded, so that a
/// lost probe never leaves a process behind).
pub(crate) fn hold_code(release: &Path) -> String {
    format!(
        "import os, time\nprint('uvfix-holding', flush=True)\nend = time.time() + 300\n\
         while not os.path.exists({release:?}) and time.time() < end:\n    time.sleep(0.02)\n",
        release = release.display().to_string()
    )
}

/// What the probe needs from its cell.
pub(crate) struct Probe<'a> {
    pub cache: &'a Path,
    pub release: &'a Path,
    /// The held run, as the cell runs its scenario (sandbox, uid).
    pub held: Command,
    /// `uv cache clean`, as the cache's owner, outside any sandbox (`None`: no cache).
    pub clean: Option<Command>,
    /// Why going ahead without the lock is allowed here (the cache refused a write), if it is.
    pub lockless_allowed: Option<String>,
    pub timeout: Duration,
}

/// Run the probe.
pub(crate) fn probe(probe: Probe<'_>) -> anyhow::Result<LockReport> {
    let lock = probe.cache.join(".lock");
    let mut held_cmd = probe.held;
    held_cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut held = Spawned::spawn(held_cmd, "the held uv run")?;
    // Lines from a thread: a run that never prints must not block the probe past its timeout.
    let stdout = held.child.stdout.take().context("the held run's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = held.child.stderr.take().context("the held run's stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text);
        text
    });
    let deadline = Instant::now() + probe.timeout;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.trim() == "uvfix-holding" => break,
            Ok(_) => {}
            Err(_) => {
                drop(held);
                let stderr = stderr.join().unwrap_or_default();
                anyhow::bail!(
                    "the held `uv run` did not start although the scenario ran: {}",
                    crate::expect::first_error_line(&stderr)
                );
            }
        }
    }
    let locks = locks_on(&lock)?;
    let is_held = locks.iter().any(|l| !l.blocked);

    let mut clean_seen = "was not run: there is no cache".to_owned();
    let mut waited = false;
    // Whether clean removed anything before the release: the cache's digest now and then.
    let before = crate::digest::TreeDigest::of(probe.cache)?;
    let mut cleaned_early = false;
    let mut clean = match probe.clean {
        Some(mut command) => {
            command.stdout(Stdio::null()).stderr(Stdio::piped());
            Some(Spawned::spawn(command, "uv cache clean")?)
        }
        None => None,
    };
    if let Some(clean) = clean.as_mut() {
        let deadline = Instant::now() + probe.timeout;
        loop {
            if locks_on(&lock)?.iter().any(|l| l.blocked && l.write) {
                waited = true;
                clean_seen = "waited for the lock".into();
                break;
            }
            if let Some(status) = clean.try_exit()? {
                let mut err = String::new();
                if let Some(pipe) = clean.child.stderr.as_mut() {
                    let _ = std::io::Read::read_to_string(pipe, &mut err);
                }
                cleaned_early = !before
                    .diff(&crate::digest::TreeDigest::of(probe.cache)?)
                    .is_empty();
                clean_seen = if status.success() {
                    "ran to its end without waiting".into()
                } else {
                    format!(
                        "stopped without waiting ({status}): {}",
                        crate::expect::first_error_line(&err)
                    )
                };
                break;
            }
            if Instant::now() >= deadline {
                clean_seen = "neither waited on the lock nor ended".into();
                break;
            }
            std::thread::sleep(POLL);
        }
    }

    fs_err::write(probe.release, "")?;
    let held_status = held.wait_for(probe.timeout)?;
    let held_err = stderr.join().unwrap_or_default();
    if let Some(clean) = clean.as_mut() {
        clean.wait_for(probe.timeout)?;
    }
    let held_ok = held_status.is_some_and(|s| s.success());

    let (verdict, fail) = match (is_held, waited) {
        _ if !held_ok => (
            format!(
                "the held `uv run` did not end well ({}): {}",
                held_status.map_or_else(|| "killed".to_owned(), |s| s.to_string()),
                crate::expect::first_error_line(&held_err)
            ),
            true,
        ),
        (true, true) => (
            "uv held the cache lock; `uv cache clean` by the cache's owner waited for it".into(),
            false,
        ),
        // It could not take the lock at all (a `.lock` it may not open): nothing was at risk.
        (true, false) if !cleaned_early && clean.is_some() => (
            format!(
                "uv held the cache lock; `uv cache clean` by the cache's owner {clean_seen}, and removed nothing"
            ),
            false,
        ),
        (true, false) => (
            format!(
                "uv held the cache lock, but `uv cache clean` by the cache's owner {clean_seen}{}",
                if cleaned_early {
                    " and cleared the cache under it"
                } else {
                    ""
                }
            ),
            clean.is_some(),
        ),
        (false, _) => match &probe.lockless_allowed {
            Some(why) => (
                format!(
                    "uv went ahead without the cache lock, allowed: {why}; `uv cache clean` by the cache's owner {clean_seen}"
                ),
                false,
            ),
            None => (
                format!(
                    "uv went ahead without the cache lock in a writable cache; `uv cache clean` by the cache's owner {clean_seen}"
                ),
                true,
            ),
        },
    };
    Ok(LockReport {
        held: is_held,
        clean: clean_seen,
        verdict,
        fail,
    })
}

/// `uv cache clean` as the owner of `cache`, with the cell's environment.
pub(crate) fn clean_as_owner(cache: &Path, inv: &uvfix_sandbox::Invocation) -> Option<Command> {
    let meta = fs_err::metadata(cache).ok()?;
    Some(owner::command_as(meta.uid(), meta.gid(), inv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_held_and_waiting_flocks() {
        let text = "1: POSIX  ADVISORY  WRITE 30948 fe:00:10034892 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 24490 fe:00:5685543 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 24500 fe:00:5685543 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 23536 103:0a:77 0 EOF\n";
        let locks = flocks(text);
        assert_eq!(
            locks,
            [
                Flock {
                    blocked: false,
                    write: false,
                    major: 0xfe,
                    minor: 0,
                    inode: 5685543
                },
                Flock {
                    blocked: true,
                    write: true,
                    major: 0xfe,
                    minor: 0,
                    inode: 5685543
                },
                Flock {
                    blocked: false,
                    write: true,
                    major: 0x103,
                    minor: 0x0a,
                    inode: 77
                },
            ]
        );
    }

    /// The probe's ground truth, without uv: a shared flock shows as held, an exclusive
    /// request queued behind it as blocked, on the same inode.
    #[test]
    fn sees_a_real_lock_and_a_waiter() {
        let dir = assert_fs::TempDir::new().unwrap();
        let path = dir.path().join(".lock");
        fs_err::write(&path, "").unwrap();
        assert!(locks_on(&path).unwrap().is_empty());
        let shared = fs_err::File::open(&path).unwrap();
        shared.file().lock_shared().unwrap();
        let mut waiter = Command::new("flock")
            .arg("-x")
            .arg(&path)
            .arg("true")
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            seen = locks_on(&path).unwrap();
            if seen.iter().any(|l| l.blocked) {
                break;
            }
            std::thread::sleep(POLL);
        }
        assert!(seen.iter().any(|l| !l.blocked && !l.write), "{seen:?}");
        assert!(seen.iter().any(|l| l.blocked && l.write), "{seen:?}");
        drop(shared);
        assert!(waiter.wait().unwrap().success());
        assert!(locks_on(&dir.path().join("missing")).unwrap().is_empty());
    }
}
