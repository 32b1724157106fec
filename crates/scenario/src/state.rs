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
//!
//! Three states give one piece of an otherwise writable cache to another user, as shared
//! caches and `sudo uv …` leave it: [`CacheState::BucketForeign`], [`CacheState::LockForeign`],
//! [`CacheState::MarkerForeign`]. Owners and modes mean nothing to root (CAP_DAC_OVERRIDE),
//! so these states need an unprivileged uv ([`Uids`]): the cache belongs to the uid uv runs
//! as, the piece to root. As root that is uid 65534 in `none` (the cell hands the cache and
//! the rest of the cell to it, and runs uv as it) and in `foreign-owner` (which runs uv as
//! 65534 anyway); in the other sandboxes uv runs as root and the states are skipped, saying
//! why. As a user with passwordless sudo (GitHub's `runner`), uv runs as that user
//! everywhere, and sudo gives the piece to root. Before such a cell counts, the cell proves
//! with the helper, as uv's uid and outside any sandbox, that the piece is closed to it
//! ([`CacheState::proofs`]).

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
    /// The cache is writable, but its environments bucket (`environments-v2`) belongs to
    /// another user (root) and is not writable: one refused bucket must not make uv stop
    /// writing the others.
    BucketForeign,
    /// The cache is writable, but its `.lock` belongs to another user (root), mode 0600: uv
    /// can neither open nor replace-in-place it, and must not go on without a lock.
    LockForeign,
    /// The cache and its buckets are writable, but `sdists-v9/.git` and `CACHEDIR.TAG` were
    /// created by another account (root), mode 0644: a shared cache as unslothai/unsloth#10647
    /// met it ("failed to open …/sdists-v9/.git: Permission denied", uv 0.12.1).
    MarkerForeign,
}

/// The bucket [`CacheState::BucketForeign`] gives away, by its name without the version.
///
/// Why `environments-v*` rather than `interpreter-v*` or `archive-v*`: it is the bucket the
/// stack's scratch latch and its probe are about (a refused environment write must not send
/// every later temporary directory and environment out of the cache); S4, S5 and S6 reuse
/// environments from it and S8 and S9 need new ones, so it is refused in some scenarios and
/// only read in others, while `interpreter-v*` and `wheels-v*` stay writable and the
/// write-set check sees whether uv still writes them. `archive-v*` is only written when a
/// wheel is unpacked for the first time, which no sandboxed step does on a warm cache (the
/// state would be the warm state); a refused `interpreter-v*` would stop S2 and S6's
/// interpreter records, the one write every build agrees on.
///
/// A scenario whose warm steps never built an environment (S1, S2, S3, S7) has no such
/// bucket: the state creates it empty, as [`ENVIRONMENTS_BUCKET`], the way a `sudo uvx …`
/// on the machine leaves it, so that uv meets it when it looks for environments.
pub const FOREIGN_BUCKET: &str = "environments-v";

/// The environments bucket of uv 0.12.5 (`uv_cache::CacheBucket::Environments`).
pub const ENVIRONMENTS_BUCKET: &str = "environments-v2";

/// Who owns a foreign piece: root, as `sudo uv …` leaves it.
pub const FOREIGN_OWNER: (u32, u32) = (0, 0);

/// Who uv runs as in a cell of a foreign state, and whether the cell must switch to that
/// user itself (as root in `none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uids {
    pub uid: u32,
    pub gid: u32,
    /// The cell hands the cache (and the rest of its tree) to `uid` and runs every command
    /// of the scenario as `uid`: no sandbox does it.
    pub switch: bool,
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

    /// One piece of a writable cache belongs to another user.
    pub fn is_foreign(self) -> bool {
        matches!(
            self,
            CacheState::BucketForeign | CacheState::LockForeign | CacheState::MarkerForeign
        )
    }

    /// Who uv runs as in `sandbox` (for the foreign states; see the module docs).
    pub fn uids(self, sandbox: Sandbox) -> Uids {
        let me = Uids {
            uid: uvfix_sandbox::owner::my_uid(),
            gid: uvfix_sandbox::owner::my_gid(),
            switch: false,
        };
        if !uvfix_sandbox::is_root() {
            return me;
        }
        let nobody = uvfix_sandbox::foreign::UID;
        match sandbox {
            Sandbox::ForeignOwner => Uids {
                uid: nobody,
                gid: nobody,
                switch: false,
            },
            Sandbox::None if self.is_foreign() => Uids {
                uid: nobody,
                gid: nobody,
                switch: true,
            },
            _ => me,
        }
    }

    /// `Some(reason)` when the state means nothing in this sandbox and the cell is skipped.
    ///
    /// `lock-mode-000` only changes anything for a process that permission bits apply to: root
    /// opens a mode-000 file regardless (CAP_DAC_OVERRIDE). Inside foreign-owner the command
    /// runs as an unprivileged uid; elsewhere it runs as whoever runs the tests. The foreign
    /// states likewise, and they need a user to give the piece to (see the module docs).
    pub fn skip_reason(self, sandbox: Sandbox) -> Option<String> {
        self.skip_reason_for(
            sandbox,
            uvfix_sandbox::is_root(),
            uvfix_sandbox::owner::can_switch_users(),
        )
    }

    /// [`CacheState::skip_reason`] with the runner's root-ness and sudo explicit (for tests).
    pub fn skip_reason_for(
        self,
        sandbox: Sandbox,
        runner_is_root: bool,
        can_switch_users: bool,
    ) -> Option<String> {
        if self == CacheState::LockMode000 && sandbox != Sandbox::ForeignOwner && runner_is_root {
            return Some(
                "lock-mode-000 needs a non-root uid (root ignores mode bits); only foreign-owner runs as one"
                    .into(),
            );
        }
        if !self.is_foreign() {
            return None;
        }
        if !can_switch_users {
            return Some(format!(
                "{self} gives a piece of the cache to another user: that needs root (with setpriv) or passwordless sudo"
            ));
        }
        if sandbox == Sandbox::ForeignOwner && self != CacheState::LockForeign {
            return Some(format!(
                "in foreign-owner the whole cache belongs to another user already: {self} is the warm state there"
            ));
        }
        if runner_is_root && !matches!(sandbox, Sandbox::None | Sandbox::ForeignOwner) {
            return Some(format!(
                "uv runs as root in {sandbox}, and root ignores owners and modes (CAP_DAC_OVERRIDE): \
                 {self} would be the warm state; it runs in none (as the cache's owner, uid {}) \
                 and foreign-owner, and in every sandbox for a non-root runner",
                uvfix_sandbox::foreign::UID
            ));
        }
        None
    }

    /// The cache paths (relative, `/`-separated) the state gives to another user: what a
    /// writable cache of this state takes away from uv.
    pub fn foreign_paths(self, cache: &Path) -> Result<Vec<String>, StateError> {
        let missing = |what| StateError::Missing {
            state: self,
            what,
            cache: cache.to_owned(),
        };
        let name = |p: PathBuf| {
            p.strip_prefix(cache)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned()
        };
        Ok(match self {
            CacheState::BucketForeign => vec![name(
                versioned_bucket(cache, FOREIGN_BUCKET)
                    .ok_or_else(|| missing("an environments-v* bucket"))?,
            )],
            CacheState::LockForeign => vec![".lock".into()],
            CacheState::MarkerForeign => vec![
                name(
                    sdists_bucket(cache)
                        .ok_or_else(|| missing("an sdists-v* bucket"))?
                        .join(".git"),
                ),
                "CACHEDIR.TAG".into(),
            ],
            _ => Vec::new(),
        })
    }

    /// What must be proven, as uv's uid and outside any sandbox, before a cell of this state
    /// counts: `(path, must_be_denied, probe)` — the foreign piece is closed to uv, and in a
    /// writable cell the cache around it is open.
    pub fn proofs(self, cache: &Path, writable: bool) -> Result<Vec<Proof>, StateError> {
        let mut proofs = Vec::new();
        for rel in self.foreign_paths(cache)? {
            let path = cache.join(&rel);
            proofs.push(match self {
                CacheState::BucketForeign => Proof::denied(ProofKind::Create, path),
                // 0600 and another owner's: not even the shared lock's read-only open works.
                CacheState::LockForeign => Proof::denied(ProofKind::OpenRead, path),
                _ => Proof::denied(ProofKind::OpenWrite, path),
            });
        }
        if writable && self.is_foreign() {
            proofs.push(Proof::allowed(ProofKind::Create, cache.to_owned()));
            if self == CacheState::MarkerForeign
                && let Some(sdists) = sdists_bucket(cache)
            {
                proofs.push(Proof::allowed(ProofKind::Create, sdists));
            }
        }
        Ok(proofs)
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
            // The modes here; the owner is given by the cell ([`CacheState::uids`]), which
            // knows who uv runs as. A bucket keeps its 0755: closed to everyone but its owner.
            CacheState::BucketForeign | CacheState::LockForeign | CacheState::MarkerForeign => {
                if self == CacheState::BucketForeign
                    && versioned_bucket(cache, FOREIGN_BUCKET).is_none()
                {
                    let bucket = cache.join(ENVIRONMENTS_BUCKET);
                    fs_err::create_dir(&bucket).map_err(io(&bucket))?;
                }
                let mode = match self {
                    CacheState::LockForeign => Some(0o600),
                    CacheState::MarkerForeign => Some(0o644),
                    _ => None,
                };
                for rel in self.foreign_paths(cache)? {
                    let path = cache.join(rel);
                    let meta = fs_err::symlink_metadata(&path).map_err(io(&path))?;
                    if let Some(mode) = mode {
                        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                            .map_err(io(&path))?;
                    } else if meta.permissions().mode() & 0o022 != 0 {
                        // Closed to others by its mode, whoever they are.
                        fs_err::set_permissions(
                            &path,
                            std::fs::Permissions::from_mode(meta.permissions().mode() & !0o022),
                        )
                        .map_err(io(&path))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What one proof of a foreign state tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    Create,
    OpenRead,
    OpenWrite,
}

/// One thing uv's uid must (not) be able to do, proven before a foreign state's cell counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub kind: ProofKind,
    pub path: PathBuf,
    pub denied: bool,
}

impl Proof {
    fn denied(kind: ProofKind, path: PathBuf) -> Self {
        Self {
            kind,
            path,
            denied: true,
        }
    }

    fn allowed(kind: ProofKind, path: PathBuf) -> Self {
        Self {
            kind,
            path,
            denied: false,
        }
    }

    /// The helper's probe for it.
    pub fn probe(&self) -> uvfix_sandbox::owner::Probe<'_> {
        use uvfix_sandbox::owner::Probe;
        match self.kind {
            ProofKind::Create => Probe::Create(&self.path),
            ProofKind::OpenRead => Probe::OpenRead(&self.path),
            ProofKind::OpenWrite => Probe::OpenWrite(&self.path),
        }
    }
}

/// The `sdists-v<N>` bucket (its version moves with uv releases; 0.12.5 has `sdists-v9`).
pub fn sdists_bucket(cache: &Path) -> Option<PathBuf> {
    versioned_bucket(cache, "sdists-v")
}

/// The bucket `<prefix><N>` with the highest `N` (several only after an upgrade).
pub fn versioned_bucket(cache: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs_err::read_dir(cache)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .is_some_and(|v| v.parse::<u32>().is_ok())
                && e.file_type().is_ok_and(|t| t.is_dir())
        })
        .map(|e| e.path())
        .collect();
    found.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(prefix))
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
        assert!(s.skip_reason_for(Sandbox::RoHome, true, true).is_some());
        assert!(s.skip_reason_for(Sandbox::None, true, true).is_some());
        assert!(
            s.skip_reason_for(Sandbox::ForeignOwner, true, true)
                .is_none()
        );
        assert!(s.skip_reason_for(Sandbox::RoHome, false, false).is_none());
        assert!(
            CacheState::Warm
                .skip_reason_for(Sandbox::Landlock, true, true)
                .is_none()
        );
    }

    /// Where a foreign piece can bite: never for uv as root, never without a user to give it
    /// to, and in foreign-owner only for the lock (the rest of the cache is foreign there).
    #[test]
    fn foreign_states_run_where_they_bite() {
        use CacheState as St;
        for state in [St::BucketForeign, St::LockForeign, St::MarkerForeign] {
            assert!(state.skip_reason_for(Sandbox::None, true, true).is_none());
            assert!(state.skip_reason_for(Sandbox::None, false, true).is_none());
            assert!(
                state
                    .skip_reason_for(Sandbox::Landlock, false, true)
                    .is_none()
            );
            let root = state
                .skip_reason_for(Sandbox::Landlock, true, true)
                .unwrap();
            assert!(root.contains("CAP_DAC_OVERRIDE"), "{root}");
            let alone = state.skip_reason_for(Sandbox::None, false, false).unwrap();
            assert!(alone.contains("passwordless sudo"), "{alone}");
        }
        assert!(
            St::LockForeign
                .skip_reason_for(Sandbox::ForeignOwner, true, true)
                .is_none()
        );
        assert!(
            St::BucketForeign
                .skip_reason_for(Sandbox::ForeignOwner, false, true)
                .is_some()
        );
    }

    #[test]
    fn foreign_states_close_their_piece_by_mode() {
        let dir = warmed();
        dir.child("uv/environments-v2/x").create_dir_all().unwrap();
        let cache = dir.path().join("uv");
        fs_err::set_permissions(
            cache.join("environments-v2"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let mode = |p: &str| {
            fs_err::metadata(cache.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        CacheState::BucketForeign.apply(&cache).unwrap();
        assert_eq!(mode("environments-v2"), 0o755);
        CacheState::LockForeign.apply(&cache).unwrap();
        assert_eq!(mode(".lock"), 0o600);
        CacheState::MarkerForeign.apply(&cache).unwrap();
        assert_eq!(mode("sdists-v9/.git"), 0o644);
        assert_eq!(mode("CACHEDIR.TAG"), 0o644);
        assert_eq!(
            CacheState::MarkerForeign.foreign_paths(&cache).unwrap(),
            ["sdists-v9/.git", "CACHEDIR.TAG"]
        );
        let proofs = CacheState::MarkerForeign.proofs(&cache, true).unwrap();
        assert_eq!(
            proofs
                .iter()
                .map(|p| (p.kind, p.denied))
                .collect::<Vec<_>>(),
            [
                (ProofKind::OpenWrite, true),
                (ProofKind::OpenWrite, true),
                (ProofKind::Create, false),
                (ProofKind::Create, false)
            ]
        );
        let err = CacheState::BucketForeign
            .foreign_paths(dir.path())
            .unwrap_err();
        assert!(err.to_string().contains("environments-v*"), "{err}");
    }

    #[test]
    fn a_missing_environments_bucket_is_created_for_the_foreign_owner() {
        let dir = warmed();
        let cache = dir.path().join("uv");
        CacheState::BucketForeign.apply(&cache).unwrap();
        dir.child("uv/environments-v2")
            .assert(predicate::path::is_dir());
        assert_eq!(
            CacheState::BucketForeign.foreign_paths(&cache).unwrap(),
            ["environments-v2"]
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
