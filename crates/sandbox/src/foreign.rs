//! `foreign-owner`: the cache belongs to someone else and its permission bits deny us, as on a
//! shared CI cache or a cache populated by `sudo`.
//!
//! ```text
//! as root:     run as uid/gid 65534 (nobody/nogroup) in a fresh network namespace:
//!                unshare --net -- setpriv --reuid=65534 --regid=65534 --clear-groups -- PROG …
//!              prepare(): chown -R 65534:65534 workspace tmp
//!                         o+x on every ancestor of home, workspace, tmp and on home → cache
//!                         the cache tree is not touched: it stays root's, modes as they are
//! as non-root: run as ourselves; prepare() hands the cache tree, or with no cache its nearest
//!              existing parent in home (`~/.cache`), to another owner:
//!   with passwordless sudo (GitHub's `runner`): `sudo -n chown -R 0:0 TARGET`, a cache
//!              populated by `sudo`, exactly root's case seen from the other side;
//!              release() chowns it back
//!   without:   every write bit stripped from TARGET, so the owner is denied too (no
//!              CAP_DAC_OVERRIDE); release() gives u+w back. Weaker: the owner may still
//!              hard-link cache files and uv then cannot rewrite a linked RECORD (EACCES), which
//!              a real foreign owner never meets (protected_hardlinks refuses the link first)
//! ```
//!
//! Denied writes get EACCES (given the usual 755/644 modes; a group/other-writable entry in the
//! cache, like uv's 0666 `.lock`, stays writable, as it would for a real foreign owner).
//! "Every ancestor" includes system directories: a layout under `/root` makes `/root` o+x
//! (traversable, not listable). The fixture's layouts live under `/tmp`. Why `setpriv` rather than the helper calling `setresuid`: it is part
//! of util-linux (always on Debian), changes real, effective and saved ids plus the supplementary
//! groups in one audited place, and keeps this crate free of `unsafe`; dropping from uid 0 also
//! clears the capability sets, so the command is an ordinary unprivileged process.
//!
//! Everything the command executes must be reachable by uid 65534. [`stage_executable`] copies a
//! binary that is not (e.g. under `/root`, mode 0700) to a world-readable directory; the canary
//! does that for the helper by itself, callers do it for their program.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use fs_err as fs;

use crate::policy::{Policy, base_command, direct_command};
use crate::probe::{find_in_path, is_root, tool};
use crate::{Availability, Denial, Invocation, Layout};

/// The unprivileged uid (and gid) the command runs as when we are root: `nobody`/`nogroup`.
pub const UID: u32 = 65534;

/// `foreign-owner`: see the module's documentation.
pub(crate) struct ForeignOwner;

impl Policy for ForeignOwner {
    fn name(&self) -> &str {
        "foreign-owner"
    }

    fn denial(&self) -> Option<Denial> {
        Some(Denial::Eacces)
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
        command(inv)
    }

    /// As root the helper runs as uid 65534: a copy it may execute, see [`stage_executable`].
    fn stage_helper(&self, helper: &Path) -> Result<PathBuf, String> {
        stage_executable(helper).map_err(|e| format!("staging the helper for uid {UID}: {e}"))
    }
}

fn availability() -> Availability {
    if !is_root() {
        // Non-root: write bits are stripped instead; nothing to find.
        return Availability::Available;
    }
    match find_in_path("setpriv") {
        Some(_) => Availability::Available,
        None => Availability::Unavailable("setpriv not found: apt-get install util-linux".into()),
    }
}

fn command(inv: &Invocation) -> Command {
    if !is_root() {
        return direct_command(inv);
    }
    let mut cmd = match find_in_path("unshare") {
        // Root may create a network namespace without a user namespace: offline for free.
        Some(unshare) => {
            let mut cmd = base_command(unshare, inv);
            cmd.args(["--net", "--"]).arg(tool("setpriv"));
            cmd
        }
        None => base_command(tool("setpriv"), inv),
    };
    cmd.arg(format!("--reuid={UID}"))
        .arg(format!("--regid={UID}"))
        .args(["--clear-groups", "--"])
        .arg(&inv.program)
        .args(&inv.args);
    cmd
}

/// What a non-root run strips the write bits from: the cache tree, or when there is no cache
/// the directory uv would create it in (`~/.cache`), so that creating it is denied as well,
/// as it is for a real foreign owner's `~/.cache`. Without this, a non-root runner (GitHub's
/// `runner` user) would leave `~/.cache` writable and the cache-absent canary would succeed.
fn non_root_target(layout: &Layout) -> Option<&Path> {
    layout
        .cache
        .ancestors()
        .find(|dir| dir.is_dir())
        .filter(|dir| dir.starts_with(&layout.home))
}

/// `sudo -n true` succeeds: sudo without a password (asked once per process).
pub(crate) fn passwordless_sudo() -> bool {
    static SUDO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUDO.get_or_init(|| {
        find_in_path("sudo").is_some()
            && Command::new(tool("sudo"))
                .args(["-n", "true"])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// `sudo -n chown -hR OWNER dir`: symlinks themselves, never their targets.
pub(crate) fn sudo_chown(dir: &Path, owner: &str) -> io::Result<()> {
    let output = Command::new(tool("sudo"))
        .args(["-n", "chown", "-hR", owner])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`sudo -n chown -hR {owner} {}` failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn prepare(layout: &Layout) -> io::Result<()> {
    // The cache is left absent when it is: the cell's canary then aims at its nearest existing
    // parent, which is denied below (non-root) or root-owned 0755 (root).
    if !is_root() {
        // Recorded before it is done (see `uvfix_run`): a root-owned tree in the user's store
        // is one the user cannot remove.
        use uvfix_run::{Entry, journal::record};
        return match non_root_target(layout) {
            Some(dir) if passwordless_sudo() => {
                record(&Entry::SudoChown {
                    path: dir.to_owned(),
                    owner: me(),
                });
                sudo_chown(dir, "0:0")
            }
            Some(dir) if dir == layout.cache => {
                record(&Entry::WriteBits {
                    path: dir.to_owned(),
                });
                walk(dir, &mut |path, meta| {
                    set_mode(path, meta, meta.mode() & !0o222)
                })
            }
            Some(dir) => {
                record(&Entry::WriteBits {
                    path: dir.to_owned(),
                });
                let meta = fs::metadata(dir)?;
                set_mode(dir, &meta, meta.mode() & !0o222)
            }
            None => Ok(()),
        };
    }
    for dir in [&layout.workspace, &layout.tmp] {
        walk(dir, &mut |path, _| {
            fs::os::unix::fs::lchown(path, Some(UID), Some(UID))
        })?;
    }
    // assert_fs/tempfile dirs are 0700: without o+x on the way, uid 65534 reaches nothing.
    let mut traversed: Vec<&Path> = Vec::new();
    for dir in [&layout.home, &layout.workspace, &layout.tmp] {
        traversed.extend(dir.ancestors().skip(1));
    }
    traversed.extend(
        layout
            .cache
            .ancestors()
            .skip(1)
            .take_while(|p| p.starts_with(&layout.home))
            .filter(|p| p.is_dir()),
    );
    for dir in traversed {
        let meta = fs::metadata(dir)?;
        set_mode(dir, &meta, meta.mode() | 0o001)?;
    }
    // The cache tree itself is left exactly as it is (modes are part of the cell's cache state,
    // e.g. uv's `.lock` is 0666 and a state may chmod it 000); the canary proves the denial.
    Ok(())
}

fn release(layout: &Layout) -> io::Result<()> {
    if is_root() {
        return Ok(());
    }
    match non_root_target(layout) {
        // Handed to root by prepare(): take it back (only what prepare() can have given away).
        Some(dir) if fs::symlink_metadata(dir)?.uid() == 0 && passwordless_sudo() => {
            sudo_chown(dir, &me())
        }
        Some(dir) if dir == layout.cache => walk(dir, &mut |path, meta| {
            set_mode(path, meta, meta.mode() | 0o200)
        }),
        Some(dir) => {
            let meta = fs::metadata(dir)?;
            set_mode(dir, &meta, meta.mode() | 0o200)
        }
        _ => Ok(()),
    }
}

/// `UID:GID` of this process, for handing a tree back.
fn me() -> String {
    format!(
        "{}:{}",
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw()
    )
}

/// `path`, or a world-readable copy of it when uid 65534 could not execute it in place. Only
/// needed (and only done) when we are root; a non-root run executes as ourselves.
///
/// Copies go to `$TMPDIR/uvfix-staged/` (mode 0755), named after the original's path, size and
/// mtime, so a rebuilt binary gets a fresh copy and concurrent callers share one.
pub fn stage_executable(path: &Path) -> io::Result<PathBuf> {
    if !is_root() || executable_by_others(path)? {
        return Ok(path.to_path_buf());
    }
    let original = fs::canonicalize(path)?;
    let meta = fs::metadata(&original)?;
    let mut hasher = DefaultHasher::new();
    (&original, meta.len(), meta.mtime(), meta.mtime_nsec()).hash(&mut hasher);
    let file_name = original.file_name().unwrap_or_default().to_string_lossy();
    let dir = std::env::temp_dir().join("uvfix-staged");
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let staged = dir.join(format!("{:016x}-{file_name}", hasher.finish()));
    if !staged.exists() {
        // Copy under a private name, then rename: a concurrent caller never sees half a binary.
        let partial = dir.join(format!(".{}-{}", std::process::id(), file_name));
        fs::copy(&original, &partial)?;
        fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
        fs::rename(&partial, &staged)?;
    }
    Ok(staged)
}

/// Whether a user that is neither owner nor in the group can execute `path` (mode bits only; the
/// fixture does not use ACLs).
fn executable_by_others(path: &Path) -> io::Result<bool> {
    let path = fs::canonicalize(path)?;
    let dirs_ok = path
        .ancestors()
        .skip(1)
        .map(|dir| fs::metadata(dir).map(|m| m.mode() & 0o001 != 0))
        .collect::<io::Result<Vec<bool>>>()?
        .into_iter()
        .all(|ok| ok);
    Ok(dirs_ok && fs::metadata(&path)?.mode() & 0o001 != 0)
}

fn set_mode(path: &Path, meta: &std::fs::Metadata, mode: u32) -> io::Result<()> {
    // chmod follows symlinks: leave links alone, their targets are visited on their own.
    if meta.file_type().is_symlink() || meta.mode() & 0o7777 == mode & 0o7777 {
        return Ok(());
    }
    fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Visit `root` and everything below it, without following symlinks (not even `root`).
/// Directories are visited before their contents.
fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Path, &std::fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(root).follow_root_links(false) {
        let entry = entry?;
        visit(entry.path(), &entry.metadata()?)?;
    }
    Ok(())
}
