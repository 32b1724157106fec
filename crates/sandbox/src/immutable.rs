//! `immutable`: the cache tree carries the immutable attribute (`chattr +i`), so every write
//! into it fails with EPERM, for root too, while reads and `flock` keep working.
//!
//! macOS Seatbelt denies cache writes with EPERM; its own column needs a macOS runner. This
//! policy puts the same errno in front of uv on Linux, so the EPERM path of the patch is
//! exercised on every run. It needs `chattr` (e2fsprogs), CAP_LINUX_IMMUTABLE (root) and a
//! filesystem with the attribute (ext4, xfs, btrfs; not tmpfs): the probe checks all three.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::policy::{Policy, direct_command};
use crate::{Availability, Denial, Invocation, Layout};

/// `immutable`: the command runs as is; [`Policy::prepare`] puts the attribute on the cache.
pub(crate) struct Immutable;

impl Policy for Immutable {
    fn name(&self) -> &str {
        "immutable"
    }

    /// Seatbelt's errno, on Linux.
    fn denial(&self) -> Option<Denial> {
        Some(Denial::Eperm)
    }

    fn availability(&self) -> Availability {
        availability()
    }

    fn prepare(&self, layout: &Layout) -> io::Result<()> {
        prepare(layout)
    }

    fn release(&self, layout: &Layout) -> io::Result<()> {
        release(layout)
    }

    fn command(&self, _layout: &Layout, _helper: &Path, inv: &Invocation) -> Command {
        direct_command(inv)
    }
}

/// What gets the attribute: the cache, or when it is absent the directory it would be created
/// in (so uv cannot create it either).
fn target(layout: &Layout) -> Option<PathBuf> {
    [Some(layout.cache.as_path()), layout.cache.parent()]
        .into_iter()
        .flatten()
        .find(|dir| dir.is_dir())
        .map(Path::to_path_buf)
}

/// `chattr -R -f ±i dir`. chattr exits non-zero on the symlinks a uv cache holds (they carry
/// no attributes), so the result is checked on `dir` itself rather than by exit status.
fn chattr(flag: &str, dir: &Path) -> io::Result<()> {
    let output = Command::new("chattr")
        .args(["-R", "-f", flag])
        .arg(dir)
        .output()?;
    let set = is_immutable(dir)?;
    if set == (flag == "+i") {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`chattr -R {flag} {}` had no effect: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn is_immutable(path: &Path) -> io::Result<bool> {
    let output = Command::new("lsattr").arg("-d").arg(path).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .split_whitespace()
        .next()
        .is_some_and(|flags| flags.contains('i')))
}

fn availability() -> Availability {
    let dir = match tempfile::Builder::new()
        .prefix("uvfix-immutable-probe-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => return Availability::Unavailable(format!("creating a probe directory: {e}")),
    };
    let file = dir.path().join("f");
    if let Err(e) = fs_err::write(&file, "") {
        return Availability::Unavailable(format!("writing the probe file: {e}"));
    }
    let outcome = match chattr("+i", dir.path()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Availability::Unavailable("chattr/lsattr not found: apt-get install e2fsprogs".into())
        }
        Err(e) => Availability::Unavailable(format!(
            "the immutable attribute is not available (needs root and ext4/xfs/btrfs under {}): {e}",
            std::env::temp_dir().display()
        )),
        // std, not fs_err: the errno itself is the answer here.
        Ok(()) => match std::fs::OpenOptions::new().append(true).open(&file) {
            Err(e) if e.raw_os_error() == Some(crate::Errno::EPERM as i32) => {
                Availability::Available
            }
            Err(e) => Availability::Unavailable(format!("an immutable file gave {e}, not EPERM")),
            Ok(_) => Availability::Unavailable("an immutable file was still writable".into()),
        },
    };
    let _ = chattr("-i", dir.path());
    outcome
}

fn prepare(layout: &Layout) -> io::Result<()> {
    match target(layout) {
        Some(dir) => {
            // Recorded before it is done: a run killed half-way through `chattr -R` must still
            // have it undone by the next one (see `uvfix_run`).
            uvfix_run::journal::record(&uvfix_run::Entry::Immutable { dir: dir.clone() });
            chattr("+i", &dir)
        }
        None => Err(io::Error::other(format!(
            "neither {} nor its parent exists",
            layout.cache.display()
        ))),
    }
}

/// Lift the attribute again, or the layout could not be deleted (not even by root).
fn release(layout: &Layout) -> io::Result<()> {
    match layout.cache.parent().filter(|p| p.is_dir()) {
        Some(dir) => chattr("-i", dir),
        None => Ok(()),
    }
}
