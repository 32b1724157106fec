//! Cache states applied after warming, before the sandboxed run.
//!
//! A warmed uv 0.12.5 cache root looks like this (measured):
//!
//! ```text
//! ~/.cache/uv/.gitignore        "*"           written at cache init
//! ~/.cache/uv/CACHEDIR.TAG      "Signature: 8a477f597d28d172789f06886806bc55"
//! ~/.cache/uv/.lock             empty, mode 0666, flock()ed by every uv process
//! ~/.cache/uv/sdists-v9/.git    empty FILE: stops git from walking up into the cache
//! ~/.cache/uv/sdists-v9/.gitignore
//! ~/.cache/uv/{archive-v0,wheels-v6,interpreter-v4,environments-v2,…}/
//! ```
//!
//! Each state damages one of those markers the way real machines have them damaged (an old
//! uv, a cleanup script, a copy that dropped dotfiles or permissions), so we see that a
//! read-only cache is still read, not "repaired".

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};
use uvfix_sandbox::Sandbox;

/// How the warm cache is damaged before the sandboxed run. The names (`lock-mode-000`, …)
/// are test names, CLI values and JSON values alike.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(Display, EnumString, IntoStaticStr, VariantArray)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CacheState {
    /// As left by the warm steps.
    Warm,
    /// Root `.gitignore` removed.
    MarkerMissing,
    /// `sdists-v*/.git` replaced by a directory.
    GitMarkerIsDir,
    /// `.lock` removed.
    LockMissing,
    /// `.lock` chmod 000 (only bites a non-root uid).
    #[serde(rename = "lock-mode-000")]
    #[strum(serialize = "lock-mode-000")]
    #[cfg_attr(feature = "clap", value(name = "lock-mode-000"))]
    LockMode000,
    /// `CACHEDIR.TAG` removed.
    CachedirTagMissing,
    /// `CACHEDIR.TAG` is a symlink to a missing file.
    DanglingSymlinkMarker,
    /// The whole cache directory removed (`~/.cache` stays).
    CacheAbsent,
}

/// Target of the dangling `CACHEDIR.TAG` symlink (relative, inside the cache, never created).
pub const DANGLING_TARGET: &str = "CACHEDIR.TAG.missing-target";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("applying cache state `{state}` at {path}: {source}")]
    Io {
        state: CacheState,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("applying cache state `{state}`: {what} not found in the warmed cache {cache}")]
    Missing {
        state: CacheState,
        what: &'static str,
        cache: PathBuf,
    },
}

impl CacheState {
    pub const ALL: &'static [CacheState] = <CacheState as strum::VariantArray>::VARIANTS;

    pub fn name(self) -> &'static str {
        self.into()
    }

    /// `Some(reason)` when the state means nothing in this sandbox and the cell is skipped.
    ///
    /// `lock-mode-000` only changes anything for a process that permission bits apply to: root
    /// opens a mode-000 file regardless (CAP_DAC_OVERRIDE). Inside foreign-owner the command
    /// runs as an unprivileged uid; elsewhere it runs as whoever runs the tests.
    pub fn skip_reason(self, sandbox: Sandbox) -> Option<String> {
        self.skip_reason_for(sandbox, uvfix_sandbox::is_root())
    }

    /// [`CacheState::skip_reason`] with the runner's root-ness explicit (for tests).
    pub fn skip_reason_for(self, sandbox: Sandbox, runner_is_root: bool) -> Option<String> {
        if self == CacheState::LockMode000 && sandbox != Sandbox::ForeignOwner && runner_is_root {
            return Some(
                "lock-mode-000 needs a non-root uid (root ignores mode bits); only foreign-owner runs as one"
                    .into(),
            );
        }
        None
    }

    /// Damage the warmed cache at `cache`.
    pub fn apply(self, cache: &Path) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io {
                state: self,
                path,
                source,
            }
        };
        let tag = cache.join("CACHEDIR.TAG");
        let lock = cache.join(".lock");
        match self {
            CacheState::Warm => {}
            CacheState::MarkerMissing => {
                let p = cache.join(".gitignore");
                fs_err::remove_file(&p).map_err(io(&p))?;
            }
            CacheState::GitMarkerIsDir => {
                let sdists = sdists_bucket(cache).ok_or_else(|| StateError::Missing {
                    state: self,
                    what: "an sdists-v* bucket",
                    cache: cache.to_owned(),
                })?;
                let git = sdists.join(".git");
                match fs_err::symlink_metadata(&git) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => fs_err::remove_file(&git).map_err(io(&git))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&git)(e)),
                }
                fs_err::create_dir_all(&git).map_err(io(&git))?;
            }
            CacheState::LockMissing => fs_err::remove_file(&lock).map_err(io(&lock))?,
            CacheState::LockMode000 => {
                if !lock.exists() {
                    return Err(StateError::Missing {
                        state: self,
                        what: ".lock",
                        cache: cache.to_owned(),
                    });
                }
                fs_err::set_permissions(&lock, std::fs::Permissions::from_mode(0o000))
                    .map_err(io(&lock))?;
            }
            CacheState::CachedirTagMissing => fs_err::remove_file(&tag).map_err(io(&tag))?,
            CacheState::DanglingSymlinkMarker => {
                fs_err::remove_file(&tag).map_err(io(&tag))?;
                fs_err::os::unix::fs::symlink(DANGLING_TARGET, &tag).map_err(io(&tag))?;
            }
            CacheState::CacheAbsent => fs_err::remove_dir_all(cache).map_err(io(cache))?,
        }
        Ok(())
    }
}

/// The `sdists-v<N>` bucket (its version moves with uv releases; 0.12.5 has `sdists-v9`).
pub fn sdists_bucket(cache: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs_err::read_dir(cache)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("sdists-v")
                && e.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|e| e.path())
        .collect();
    // Several buckets only after an upgrade; take the highest version number.
    found.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("sdists-v"))
            .and_then(|v| v.parse::<u32>().ok())
    });
    found.pop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use assert_fs::prelude::*;
    use predicates::prelude::*;
    use test_case::test_case;

    /// A cache root shaped like the one uv 0.12.5 leaves behind.
    fn warmed() -> assert_fs::TempDir {
        let dir = assert_fs::TempDir::new().unwrap();
        dir.child("uv/.gitignore").write_str("*").unwrap();
        dir.child("uv/CACHEDIR.TAG")
            .write_str("Signature: 8a477f597d28d172789f06886806bc55")
            .unwrap();
        dir.child("uv/.lock").touch().unwrap();
        dir.child("uv/sdists-v9/.git").touch().unwrap();
        dir.child("uv/sdists-v9/.gitignore").touch().unwrap();
        dir.child("uv/wheels-v6/x").touch().unwrap();
        dir
    }

    #[test]
    fn names_round_trip() {
        for &s in CacheState::ALL {
            assert_eq!(s.name().parse(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
        }
    }

    #[test_case(CacheState::MarkerMissing, ".gitignore" ; "marker")]
    #[test_case(CacheState::LockMissing, ".lock" ; "lock")]
    #[test_case(CacheState::CachedirTagMissing, "CACHEDIR.TAG" ; "tag")]
    fn removes_one_file(state: CacheState, file: &str) {
        let dir = warmed();
        state.apply(&dir.path().join("uv")).unwrap();
        dir.child("uv")
            .child(file)
            .assert(predicate::path::missing());
        dir.child("uv/wheels-v6/x")
            .assert(predicate::path::exists());
    }

    #[test]
    fn warm_changes_nothing() {
        let dir = warmed();
        let before = crate::digest::TreeDigest::of(dir.path()).unwrap();
        CacheState::Warm.apply(&dir.path().join("uv")).unwrap();
        assert!(
            before
                .diff(&crate::digest::TreeDigest::of(dir.path()).unwrap())
                .is_empty()
        );
    }

    #[test]
    fn git_marker_becomes_dir() {
        let dir = warmed();
        CacheState::GitMarkerIsDir
            .apply(&dir.path().join("uv"))
            .unwrap();
        dir.child("uv/sdists-v9/.git")
            .assert(predicate::path::is_dir());
        // Idempotent.
        CacheState::GitMarkerIsDir
            .apply(&dir.path().join("uv"))
            .unwrap();
    }

    #[test]
    fn git_marker_needs_a_bucket() {
        let dir = assert_fs::TempDir::new().unwrap();
        let err = CacheState::GitMarkerIsDir.apply(dir.path()).unwrap_err();
        assert!(err.to_string().contains("sdists-v*"), "{err}");
    }

    #[test]
    fn lock_mode_000() {
        let dir = warmed();
        CacheState::LockMode000
            .apply(&dir.path().join("uv"))
            .unwrap();
        let mode = fs_err::metadata(dir.path().join("uv/.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0);
    }

    #[test]
    fn dangling_symlink_marker() {
        let dir = warmed();
        CacheState::DanglingSymlinkMarker
            .apply(&dir.path().join("uv"))
            .unwrap();
        let tag = dir.path().join("uv/CACHEDIR.TAG");
        assert!(
            fs_err::symlink_metadata(&tag)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!tag.exists(), "target must be missing");
        assert_eq!(fs_err::read_link(&tag).unwrap(), Path::new(DANGLING_TARGET));
    }

    #[test]
    fn cache_absent_keeps_parent() {
        let dir = warmed();
        CacheState::CacheAbsent
            .apply(&dir.path().join("uv"))
            .unwrap();
        dir.child("uv").assert(predicate::path::missing());
        dir.assert(predicate::path::is_dir());
    }

    #[test]
    fn lock_mode_000_skips_for_root_outside_foreign_owner() {
        let s = CacheState::LockMode000;
        assert!(s.skip_reason_for(Sandbox::RoHome, true).is_some());
        assert!(s.skip_reason_for(Sandbox::None, true).is_some());
        assert!(s.skip_reason_for(Sandbox::ForeignOwner, true).is_none());
        assert!(s.skip_reason_for(Sandbox::RoHome, false).is_none());
        assert!(
            CacheState::Warm
                .skip_reason_for(Sandbox::Landlock, true)
                .is_none()
        );
    }

    #[test]
    fn finds_newest_sdists_bucket() {
        let dir = assert_fs::TempDir::new().unwrap();
        dir.child("sdists-v8").create_dir_all().unwrap();
        dir.child("sdists-v10").create_dir_all().unwrap();
        dir.child("sdists-v9").create_dir_all().unwrap();
        dir.child("sdists-v99.txt").touch().unwrap();
        assert_eq!(
            sdists_bucket(dir.path()).unwrap(),
            dir.path().join("sdists-v10")
        );
    }
}
