//! Undoing a sandbox's preparation from its journal entry alone. `uvfix_sandbox`'s own
//! `release` does the same after every cell; this is the safety net for a cell that never got
//! there (a run killed, a thread stopped half-way), written here because the sandbox crate
//! depends on this one and not the other way round.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::journal::Entry;

/// Long enough for `chattr -R` over a big cache, short enough that a hung tool cannot keep a
/// run from ending.
const LIMIT: Duration = Duration::from_secs(120);

/// Undo `entry` if it is a preparation whose path still exists; `Err` says what failed.
pub(crate) fn undo(entry: &Entry) -> Result<(), String> {
    match entry {
        Entry::Immutable { dir } if dir.exists() => lift_immutable(dir),
        Entry::SudoChown { path, owner } if path.exists() => {
            let mut chown = Command::new("sudo");
            chown.args(["-n", "chown", "-R", owner]).arg(path);
            checked(&mut chown)
        }
        Entry::WriteBits { path } if path.exists() => give_write_bits(path),
        _ => Ok(()),
    }
}

/// `chattr -R -f -i dir`. chattr exits non-zero on the symlinks a uv cache holds (they carry no
/// attributes), so its exit status says nothing; what is left is found by the removal after.
pub(crate) fn lift_immutable(dir: &Path) -> Result<(), String> {
    let mut chattr = Command::new("chattr");
    chattr.args(["-R", "-f", "-i"]).arg(dir);
    uvfix_process::run_anyway(&mut chattr, Some(LIMIT))
        .map(drop)
        .map_err(|e| e.to_string())
}

fn checked(command: &mut Command) -> Result<(), String> {
    let shown = uvfix_process::shown(command);
    match uvfix_process::run_anyway(command, Some(LIMIT)) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{shown}` failed ({}): {}",
            out.status_text(),
            out.stderr_text().trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// `chmod -R u+w`, symlinks left alone (chmod would follow them).
fn give_write_bits(path: &Path) -> Result<(), String> {
    for entry in walkdir::WalkDir::new(path).follow_root_links(false) {
        let entry = entry.map_err(|e| e.to_string())?;
        let meta = entry.metadata().map_err(|e| e.to_string())?;
        let mode = meta.permissions().mode();
        if !meta.file_type().is_symlink() && mode & 0o200 == 0 {
            fs_err::set_permissions(entry.path(), PermissionsExt::from_mode(mode | 0o200))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// foreign-owner as a non-root user without sudo strips write bits; the undo gives the owner
    /// its write bit back everywhere below, and leaves symlinks alone.
    #[test]
    fn write_bits_come_back_below_the_path() {
        let dir = assert_fs::TempDir::new().unwrap();
        let cache = dir.path().join("cache");
        fs_err::create_dir_all(cache.join("sub")).unwrap();
        fs_err::write(cache.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink("sub/f", cache.join("link")).unwrap();
        for path in [cache.join("sub/f"), cache.join("sub"), cache.clone()] {
            let mode = fs_err::metadata(&path).unwrap().permissions().mode();
            fs_err::set_permissions(&path, PermissionsExt::from_mode(mode & !0o222)).unwrap();
        }
        undo(&Entry::WriteBits {
            path: cache.clone(),
        })
        .unwrap();
        for path in [cache.join("sub/f"), cache.join("sub"), cache.clone()] {
            let mode = fs_err::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o200, 0o200, "{}", path.display());
        }
        // A preparation whose path is gone is nothing to undo.
        undo(&Entry::Immutable {
            dir: dir.path().join("gone"),
        })
        .unwrap();
    }
}
