//! Running tests as an ordinary user when we are root.
//!
//! uv's tests that make a directory read-only with permission bits (upstream's
//! `ReadOnlyDirectoryGuard`, the stack's unit tests) assume what uv's CI has: a user that
//! permission bits bind. Root is not bound by them, so as root the tests run as uid/gid
//! 65534 through util-linux's `setpriv`.
//!
//! Upstream's integration tests ([`crate::suite`]) and `cargo xtask test-patched` (the stack's
//! unit tests) both run this way, so it is public.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// The uid and gid tests run as when we are root.
pub const NOBODY: u32 = 65534;

#[cfg(unix)]
pub fn is_root() -> bool {
    uvfix_sandbox::is_root()
}

/// Elsewhere (Windows) there is no root to step down from.
#[cfg(not(unix))]
pub fn is_root() -> bool {
    false
}

/// `program`, as uid/gid [`NOBODY`] with no supplementary groups.
pub fn as_nobody(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--"])
        .arg(program);
    command
}

/// Hand `path` to [`NOBODY`].
#[cfg(unix)]
pub fn give_to_nobody(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY))
        .with_context(|| format!("handing {} to uid {NOBODY}", path.display()))
}

#[cfg(not(unix))]
pub fn give_to_nobody(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Make `path` readable (and enterable) by everyone.
#[cfg(unix)]
pub fn open_up(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
pub fn open_up(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Whether every directory from `/` down to `dir` lets others in.
#[cfg(unix)]
pub fn reachable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .all(|d| fs_err::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

#[cfg(not(unix))]
pub fn reachable_by_others(_dir: &Path) -> bool {
    true
}
