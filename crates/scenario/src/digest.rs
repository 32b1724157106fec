//! A comparable, diffable digest of a whole directory tree (the uv cache).
//!
//! A read-only cache must come out of a sandboxed run bit-for-bit as it went in. We record,
//! per relative path: the entry type, permission bits, and for files size + SHA-256 of the
//! contents, for symlinks the target text. Symlinks are never followed (a dangling marker
//! symlink is one of the cache states). Timestamps are deliberately left out: reading a cache
//! must not be confused with writing it, and atime/ctime move for reasons outside uv.
//! Directory sizes are left out too (ext4 never shrinks a directory, so they carry no signal).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EntryKind {
    Dir,
    File {
        size: u64,
        sha256: String,
    },
    Symlink {
        target: String,
    },
    /// Sockets, fifos, devices: recorded by kind only.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EntryKind::Dir => write!(f, "dir {:04o}", self.mode),
            EntryKind::File { size, sha256 } => {
                write!(f, "file {:04o} {size}B {}", self.mode, &sha256[..12])
            }
            EntryKind::Symlink { target } => write!(f, "symlink -> {target}"),
            EntryKind::Other => write!(f, "special {:04o}", self.mode),
        }
    }
}

/// The digest of a tree. `root` itself is recorded under the relative path `""`; a missing
/// root gives an empty digest with `exists == false`, so "cache absent" is a comparable state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeDigest {
    pub root: PathBuf,
    pub exists: bool,
    pub entries: BTreeMap<String, Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("walking {path}: {source}")]
    Walk {
        path: PathBuf,
        #[source]
        source: walkdir::Error,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TreeDigest {
    /// Digest the tree under `root` without following symlinks (not even `root` itself).
    pub fn of(root: &Path) -> Result<Self, DigestError> {
        match std::fs::symlink_metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    root: root.to_owned(),
                    exists: false,
                    entries: BTreeMap::new(),
                });
            }
            Err(source) => {
                return Err(DigestError::Io {
                    path: root.to_owned(),
                    source,
                });
            }
            Ok(_) => {}
        }
        let mut entries = BTreeMap::new();
        for item in walkdir::WalkDir::new(root)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name()
        {
            let item = item.map_err(|source| DigestError::Walk {
                path: root.to_owned(),
                source,
            })?;
            let path = item.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            let io = |source| DigestError::Io {
                path: path.to_owned(),
                source,
            };
            let meta = item.metadata().map_err(|source| DigestError::Walk {
                path: path.to_owned(),
                source,
            })?;
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            let kind = if ft.is_symlink() {
                let target = fs_err::read_link(path).map_err(io)?;
                EntryKind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                }
            } else if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                EntryKind::File {
                    size: meta.len(),
                    sha256: hash_file(path).map_err(io)?,
                }
            } else {
                EntryKind::Other
            };
            // Symlink permission bits are meaningless on Linux (always 0777).
            let mode = if ft.is_symlink() { 0 } else { mode };
            entries.insert(rel, Entry { kind, mode });
        }
        Ok(Self {
            root: root.to_owned(),
            exists: true,
            entries,
        })
    }

    /// One SHA-256 over the whole digest, for logs.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(if self.exists { b"1" } else { b"0" });
        for (path, entry) in &self.entries {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(entry.to_string().as_bytes());
            if let EntryKind::File { sha256, .. } = &entry.kind {
                h.update(sha256.as_bytes());
            }
            h.update([0]);
        }
        format!("{:x}", h.finalize())
    }

    /// What changed from `self` (before) to `after`.
    pub fn diff(&self, after: &TreeDigest) -> TreeDiff {
        let mut diff = TreeDiff {
            root_created: !self.exists && after.exists,
            root_removed: self.exists && !after.exists,
            ..TreeDiff::default()
        };
        for (path, entry) in &self.entries {
            match after.entries.get(path) {
                None => diff.removed.push(path.clone()),
                Some(new) if new != entry => diff.changed.push(Change {
                    path: path.clone(),
                    before: entry.to_string(),
                    after: new.to_string(),
                }),
                Some(_) => {}
            }
        }
        diff.added = after
            .entries
            .keys()
            .filter(|p| !self.entries.contains_key(*p))
            .cloned()
            .collect();
        diff
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = match fs_err::File::open(path) {
        // A non-root runner cannot read a mode-000 file (the lock-mode-000 state's `.lock`):
        // its size and mode are still compared, its content cannot be.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Ok("unreadable".into());
        }
        other => other?,
    };
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub before: String,
    pub after: String,
}

/// Differences between two [`TreeDigest`]s. Paths are relative to the root; `""` is the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeDiff {
    pub root_created: bool,
    pub root_removed: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<Change>,
}

impl TreeDiff {
    pub fn is_empty(&self) -> bool {
        !self.root_created
            && !self.root_removed
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }

    /// One line for tables: "unchanged" or "+2 -1 ~3 (first: …)".
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "unchanged".into();
        }
        let mut s = String::new();
        if self.root_created {
            s.push_str("cache created; ");
        }
        if self.root_removed {
            s.push_str("cache removed; ");
        }
        s.push_str(&format!(
            "+{} -{} ~{}",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        ));
        let first = self
            .added
            .first()
            .map(|p| format!("+{p}"))
            .or_else(|| self.removed.first().map(|p| format!("-{p}")))
            .or_else(|| self.changed.first().map(|c| format!("~{}", c.path)));
        if let Some(first) = first {
            s.push_str(&format!(" (first: {first})"));
        }
        s
    }
}

impl fmt::Display for TreeDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "unchanged");
        }
        if self.root_created {
            writeln!(f, "root created")?;
        }
        if self.root_removed {
            writeln!(f, "root removed")?;
        }
        for p in &self.added {
            writeln!(f, "+ {p}")?;
        }
        for p in &self.removed {
            writeln!(f, "- {p}")?;
        }
        for c in &self.changed {
            writeln!(f, "~ {}: {} => {}", c.path, c.before, c.after)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assert_fs::prelude::*;
    use std::os::unix::fs::symlink;

    fn sample() -> assert_fs::TempDir {
        let dir = assert_fs::TempDir::new().unwrap();
        dir.child("cache/.lock").touch().unwrap();
        dir.child("cache/CACHEDIR.TAG")
            .write_str("Signature: 8a477f597d28d172789f06886806bc55")
            .unwrap();
        dir.child("cache/wheels-v6/a/b.whl")
            .write_binary(b"\x00\x01zip")
            .unwrap();
        symlink("wheels-v6/a", dir.path().join("cache/link")).unwrap();
        dir
    }

    fn digest(dir: &assert_fs::TempDir) -> TreeDigest {
        TreeDigest::of(&dir.path().join("cache")).unwrap()
    }

    #[test]
    fn identical_trees_are_equal() {
        let (a, b) = (sample(), sample());
        let (da, db) = (digest(&a), digest(&b));
        assert_eq!(da.entries, db.entries);
        assert_eq!(da.fingerprint(), db.fingerprint());
        assert!(da.diff(&db).is_empty());
        assert_eq!(da.diff(&db).summary(), "unchanged");
        assert!(da.entries.contains_key(""), "root recorded");
    }

    #[test]
    fn detects_content_change() {
        let dir = sample();
        let before = digest(&dir);
        // Same size, different bytes.
        dir.child("cache/wheels-v6/a/b.whl")
            .write_binary(b"\x00\x02zip")
            .unwrap();
        let diff = before.diff(&digest(&dir));
        assert_eq!(diff.changed.len(), 1, "{diff}");
        assert_eq!(diff.changed[0].path, "wheels-v6/a/b.whl");
        assert_ne!(before.fingerprint(), digest(&dir).fingerprint());
    }

    #[test]
    fn detects_mode_change() {
        let dir = sample();
        let before = digest(&dir);
        fs_err::set_permissions(
            dir.path().join("cache/.lock"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let diff = before.diff(&digest(&dir));
        assert_eq!(diff.changed.len(), 1, "{diff}");
        assert_eq!(diff.changed[0].path, ".lock");
        assert!(diff.changed[0].after.contains("0000"), "{diff}");
    }

    #[test]
    fn detects_symlink_retarget_without_following() {
        let dir = sample();
        let before = digest(&dir);
        assert_eq!(
            before.entries["link"].kind,
            EntryKind::Symlink {
                target: "wheels-v6/a".into()
            }
        );
        // Not followed: the link's target dir content is not repeated under `link/`.
        assert!(!before.entries.contains_key("link/b.whl"));
        fs_err::remove_file(dir.path().join("cache/link")).unwrap();
        symlink("missing", dir.path().join("cache/link")).unwrap();
        let diff = before.diff(&digest(&dir));
        assert_eq!(diff.changed.len(), 1, "{diff}");
        assert!(diff.changed[0].after.contains("missing"));
    }

    #[test]
    fn detects_added_removed_and_type_change() {
        let dir = sample();
        let before = digest(&dir);
        fs_err::remove_file(dir.path().join("cache/.lock")).unwrap();
        dir.child("cache/.tmpXYZ").touch().unwrap();
        fs_err::remove_file(dir.path().join("cache/CACHEDIR.TAG")).unwrap();
        dir.child("cache/CACHEDIR.TAG").create_dir_all().unwrap();
        let diff = before.diff(&digest(&dir));
        assert_eq!(diff.added, [".tmpXYZ"]);
        assert_eq!(diff.removed, [".lock"]);
        assert_eq!(diff.changed.len(), 1);
        assert!(diff.summary().starts_with("+1 -1 ~1"), "{}", diff.summary());
    }

    #[test]
    fn missing_root_is_a_state() {
        let dir = assert_fs::TempDir::new().unwrap();
        let absent = TreeDigest::of(&dir.path().join("nope")).unwrap();
        assert!(!absent.exists);
        assert!(absent.entries.is_empty());
        assert!(absent.diff(&absent.clone()).is_empty());
        dir.child("nope/x").touch().unwrap();
        let created = absent.diff(&TreeDigest::of(&dir.path().join("nope")).unwrap());
        assert!(created.root_created);
        assert_eq!(created.added, ["", "x"]);
        let removed = TreeDigest::of(&dir.path().join("nope"))
            .unwrap()
            .diff(&absent);
        assert!(removed.root_removed);
    }

    #[test]
    fn dangling_root_symlink_is_not_followed() {
        let dir = assert_fs::TempDir::new().unwrap();
        symlink("missing", dir.path().join("cache")).unwrap();
        let d = TreeDigest::of(&dir.path().join("cache")).unwrap();
        assert!(d.exists);
        assert_eq!(d.entries.len(), 1);
    }

    #[test]
    fn digest_serializes() {
        let d = digest(&sample());
        let json = serde_json::to_string(&d).unwrap();
        let back: TreeDigest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }
}
