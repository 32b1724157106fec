//! What a build wrote into a writable cache, by shape: the guard that a writable cache never
//! notices the stack.
//!
//! A cell in a writable cache (sandbox `none`) digests the cache before and after the
//! scenario's commands ([`crate::digest`]). Its [`WriteSet`] is every path the commands
//! created (`+`), removed (`-`) or changed (`~`), with the entry's kind, and with the names uv
//! draws at random or derives from absolute paths replaced by their shape, so that two runs,
//! and two builds warmed in different directories, can be compared. The patched build's set
//! must equal pristine's (see `crate::cell`, which obtains pristine's as the reference): a
//! build that moves writes out of a writable cache (into `$TMPDIR`, or nowhere) misses paths
//! pristine writes, and the cell names them.
//!
//! The shapes, as a warm uv 0.12.5 cache shows them:
//!
//! ```text
//! interpreter-v4/fa63a242d171b2ff/7cc157ed415aa3b1.msgpack   16 hex digits: cache keys  → {hash}
//! environments-v2/script-25e73c3e9432999e                   (hashes of absolute paths,
//! wheels-v6/index/ff679f81a8fb605c/uvfix-dep/…               so they differ per slot)
//! archive-v0/cw-_fnn8ERwtXjKx                               16 url-safe base64 chars:  → {id}
//!                                                            `uv_fastid::Id::secure()`
//! .tmpXXXXXX                                                 tempfile's names          → .tmp{rand}
//! ```
//!
//! Counts are kept (a build that writes one interpreter record where pristine writes two
//! differs), contents are not (they hold the slot's absolute paths).
//!
//! Running pristine twice on every writable cell showed one path whose presence varies
//! between runs: S9's `environments-v2/script-{hash}/…/__pycache__/_virtualenv.cpython-311.pyc`
//! is *changed* in some runs and not in others. Python, not uv, rewrites a bytecode file when
//! its source's recorded mtime (whole seconds) and size differ from the source's, so whether
//! it happens depends on the second the environment was rewritten in. A changed
//! `__pycache__/*.pyc` is therefore left out of the comparison by its shape; created or
//! removed ones, and everything else in the same environment (its `pyvenv.cfg`, its
//! `bin/python`), still count.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::digest::{Entry, EntryKind, TreeDigest};

/// 16 lowercase hex digits, not part of a longer word: uv's cache keys.
static HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(^|[^0-9A-Za-z])[0-9a-f]{16}($|[^0-9A-Za-z])").unwrap());
/// A whole path component of 16 url-safe base64 characters: an archive id.
static ID: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_-]{16}$").unwrap());
/// tempfile's `.tmpXXXXXX` (six random alphanumerics).
static TMP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\.tmp[A-Za-z0-9]{6}$").unwrap());

/// A path below the cache root with its random parts replaced by their shape.
pub fn shape(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    path.split('/')
        .map(component_shape)
        .collect::<Vec<_>>()
        .join("/")
}

fn component_shape(component: &str) -> String {
    if TMP.is_match(component) {
        return ".tmp{rand}".into();
    }
    // A key first: an all-hex archive id is as likely as 16 coin flips all landing on 16 of
    // 64 letters, and would only be called a hash.
    if HASH.is_match(component) {
        // `replace_all` does not see overlapping matches, and the separators are part of the
        // match: go again until nothing is left (two keys side by side, `a-b`).
        let mut s = component.to_owned();
        while HASH.is_match(&s) {
            s = HASH.replace_all(&s, "${1}{hash}${2}").into_owned();
        }
        return s;
    }
    // A component of uv's own words is never 16 characters of this alphabet with a digit or a
    // capital in it (`site-packages`, `uvfix_dep` are shorter, file names have dots).
    if ID.is_match(component)
        && component
            .chars()
            .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        return "{id}".into();
    }
    component.to_owned()
}

fn kind(entry: &Entry) -> &'static str {
    match entry.kind {
        EntryKind::Dir => "dir",
        EntryKind::File { .. } => "file",
        EntryKind::Symlink { .. } => "symlink",
        EntryKind::Other => "special",
    }
}

/// What one run wrote into the cache: `"<op> <kind> <shape>"` → how many paths have it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WriteSet(pub BTreeMap<String, usize>);

impl WriteSet {
    /// The writes between two digests of one cache.
    pub fn of(before: &TreeDigest, after: &TreeDigest) -> Self {
        let mut set = BTreeMap::new();
        let mut add = |op: char, entry: &Entry, path: &str| {
            *set.entry(format!("{op} {} {}", kind(entry), shape(path)))
                .or_insert(0) += 1;
        };
        for (path, entry) in &before.entries {
            match after.entries.get(path) {
                None => add('-', entry, path),
                Some(new) if new != entry => add('~', new, path),
                Some(_) => {}
            }
        }
        for (path, entry) in &after.entries {
            if !before.entries.contains_key(path) {
                add('+', entry, path);
            }
        }
        Self(set)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set without the writes at or below `paths` (relative to the cache root, exact
    /// names): what a state takes away from a writable cache.
    pub fn without(&self, paths: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(key, _)| {
                    let path = key.splitn(3, ' ').nth(2).unwrap_or_default();
                    !paths
                        .iter()
                        .any(|p| path == p || path.starts_with(&format!("{p}/")))
                })
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        )
    }

    /// Whether a write's presence varies between runs of one build (see the module docs).
    fn volatile(key: &str) -> bool {
        key.starts_with("~ file ") && key.contains("/__pycache__/") && key.ends_with(".pyc")
    }

    /// What `self` (the build under test) lacks and adds compared with `reference`.
    pub fn compare(&self, reference: &WriteSet) -> WriteSetDiff {
        let counted = |set: &WriteSet, other: &WriteSet| -> Vec<String> {
            set.0
                .iter()
                .filter(|(key, _)| !Self::volatile(key))
                .filter_map(|(key, &n)| {
                    let m = other.0.get(key).copied().unwrap_or(0);
                    (n > m).then(|| {
                        if n - m == 1 {
                            key.clone()
                        } else {
                            format!("{key} ×{}", n - m)
                        }
                    })
                })
                .collect()
        };
        WriteSetDiff {
            missing: counted(reference, self),
            extra: counted(self, reference),
        }
    }
}

impl fmt::Display for WriteSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing");
        }
        for (i, (key, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{key}")?;
            if *n > 1 {
                write!(f, " ×{n}")?;
            }
        }
        Ok(())
    }
}

/// The difference between the build's writes and the reference's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSetDiff {
    /// Written by the reference, not by the build: writes moved out of the cache, or lost.
    pub missing: Vec<String>,
    /// Written by the build, not by the reference.
    pub extra: Vec<String>,
}

impl WriteSetDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

impl fmt::Display for WriteSetDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[String]| {
            const SHOWN: usize = 8;
            let mut s = items
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if items.len() > SHOWN {
                s.push_str(&format!("; … {} more", items.len() - SHOWN));
            }
            s
        };
        match (self.missing.is_empty(), self.extra.is_empty()) {
            (true, true) => f.write_str("the same writes"),
            (false, true) => write!(f, "missing {}", list(&self.missing)),
            (true, false) => write!(f, "extra {}", list(&self.extra)),
            (false, false) => write!(
                f,
                "missing {}; extra {}",
                list(&self.missing),
                list(&self.extra)
            ),
        }
    }
}

/// The write-set verdict of one writable cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum WriteCheck {
    /// The build wrote what the reference wrote.
    Same { reference: String },
    /// It did not: the cell's FAIL.
    Differs {
        reference: String,
        #[serde(flatten)]
        diff: WriteSetDiff,
    },
    /// No comparison, and why (the build stopped, or there is no reference).
    NotChecked { why: String },
}

impl fmt::Display for WriteCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteCheck::Same { reference } => write!(f, "writes as {reference}"),
            WriteCheck::Differs { reference, diff } => {
                write!(f, "writes differ from {reference}'s: {diff}")
            }
            WriteCheck::NotChecked { why } => write!(f, "writes not compared: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assert_fs::prelude::*;
    use test_case::test_case;

    #[test_case("interpreter-v4/fa63a242d171b2ff/7cc157ed415aa3b1.msgpack" => "interpreter-v4/{hash}/{hash}.msgpack" ; "interpreter record")]
    #[test_case("environments-v2/script-25e73c3e9432999e/pyvenv.cfg" => "environments-v2/script-{hash}/pyvenv.cfg" ; "script env")]
    #[test_case("archive-v0/cw-_fnn8ERwtXjKx/uvfix_tool/__init__.py" => "archive-v0/{id}/uvfix_tool/__init__.py" ; "archive id")]
    #[test_case("archive-v0/5gVqk83T9yoQSOuI" => "archive-v0/{id}" ; "archive id letters and digits")]
    #[test_case(".tmpmn12wj" => ".tmp{rand}" ; "tempfile")]
    #[test_case("a/0123456789abcdef-fedcba9876543210" => "a/{hash}-{hash}" ; "two keys")]
    #[test_case("lib/python3.11/site-packages/uvfix_dep-1.0.dist-info/RECORD" => "lib/python3.11/site-packages/uvfix_dep-1.0.dist-info/RECORD" ; "words stay")]
    #[test_case("activate_this.py" => "activate_this.py" ; "file name")]
    #[test_case("abcdefghijklmnop" => "abcdefghijklmnop" ; "sixteen lowercase letters are a word")]
    #[test_case("0123456789abcdef0" => "0123456789abcdef0" ; "seventeen hex digits are not a key")]
    #[test_case("" => "." ; "the root")]
    fn shapes(path: &str) -> String {
        shape(path)
    }

    fn tree() -> assert_fs::TempDir {
        let dir = assert_fs::TempDir::new().unwrap();
        dir.child("c/.lock").touch().unwrap();
        dir.child("c/interpreter-v4/fa63a242d171b2ff/7cc157ed415aa3b1.msgpack")
            .write_str("a")
            .unwrap();
        dir
    }

    #[test]
    fn counts_creations_removals_and_changes_by_shape() {
        let dir = tree();
        let cache = dir.path().join("c");
        let before = TreeDigest::of(&cache).unwrap();
        dir.child("c/interpreter-v4/fa63a242d171b2ff/0000000000000001.msgpack")
            .write_str("b")
            .unwrap();
        dir.child("c/interpreter-v4/fa63a242d171b2ff/0000000000000002.msgpack")
            .write_str("c")
            .unwrap();
        dir.child("c/interpreter-v4/fa63a242d171b2ff/7cc157ed415aa3b1.msgpack")
            .write_str("changed")
            .unwrap();
        fs_err::remove_file(cache.join(".lock")).unwrap();
        let set = WriteSet::of(&before, &TreeDigest::of(&cache).unwrap());
        assert_eq!(
            set.0,
            BTreeMap::from([
                ("+ file interpreter-v4/{hash}/{hash}.msgpack".to_owned(), 2),
                ("- file .lock".to_owned(), 1),
                ("~ file interpreter-v4/{hash}/{hash}.msgpack".to_owned(), 1),
            ])
        );
        assert_eq!(
            set.to_string(),
            "+ file interpreter-v4/{hash}/{hash}.msgpack ×2; - file .lock; ~ file interpreter-v4/{hash}/{hash}.msgpack"
        );
    }

    #[test]
    fn a_created_cache_starts_at_its_root() {
        let dir = assert_fs::TempDir::new().unwrap();
        let cache = dir.path().join("c");
        let before = TreeDigest::of(&cache).unwrap();
        dir.child("c/CACHEDIR.TAG").touch().unwrap();
        let set = WriteSet::of(&before, &TreeDigest::of(&cache).unwrap());
        assert_eq!(set.to_string(), "+ dir .; + file CACHEDIR.TAG");
    }

    fn set(entries: &[(&str, usize)]) -> WriteSet {
        WriteSet(entries.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect())
    }

    /// The guard's purpose: a build that writes its interpreter record, or its environment,
    /// somewhere else than the cache is named with the paths it did not write.
    #[test]
    fn moved_writes_are_missing_and_counts_matter() {
        let pristine = set(&[
            ("+ file interpreter-v4/{hash}/{hash}.msgpack", 2),
            ("+ symlink environments-v2/{hash}/{hash}", 1),
        ]);
        let moved = set(&[("+ file interpreter-v4/{hash}/{hash}.msgpack", 1)]);
        let diff = moved.compare(&pristine);
        assert_eq!(
            diff.missing,
            [
                "+ file interpreter-v4/{hash}/{hash}.msgpack",
                "+ symlink environments-v2/{hash}/{hash}"
            ]
        );
        assert!(diff.extra.is_empty());
        assert_eq!(
            diff.to_string(),
            "missing + file interpreter-v4/{hash}/{hash}.msgpack; + symlink environments-v2/{hash}/{hash}"
        );
        let more = set(&[("+ file interpreter-v4/{hash}/{hash}.msgpack", 5)]);
        assert_eq!(
            more.compare(&pristine).extra,
            ["+ file interpreter-v4/{hash}/{hash}.msgpack ×3"]
        );
        assert!(pristine.compare(&pristine.clone()).is_empty());
    }

    #[test]
    fn a_rewritten_bytecode_file_is_volatile_and_nothing_else_is() {
        let pyc = "~ file environments-v2/script-{hash}/lib/python3.11/site-packages/__pycache__/_virtualenv.cpython-311.pyc";
        let cfg = "~ file environments-v2/script-{hash}/pyvenv.cfg";
        let with = set(&[(pyc, 1), (cfg, 1)]);
        let without = set(&[(cfg, 1)]);
        assert!(with.compare(&without).is_empty());
        assert!(without.compare(&with).is_empty());
        // A created bytecode file counts, as does the rest of the environment.
        let created = set(&[(&pyc.replacen('~', "+", 1), 1), (cfg, 1)]);
        assert_eq!(created.compare(&without).extra.len(), 1);
        assert_eq!(set(&[]).compare(&without).missing, [cfg]);
    }

    #[test]
    fn without_takes_away_exact_paths_and_what_is_below_them() {
        let all = set(&[
            ("+ symlink environments-v2/{hash}/{hash}", 1),
            ("+ file environments-v2-other/x", 1),
            ("+ file .lock", 1),
            ("+ file interpreter-v4/{hash}/{hash}.msgpack", 1),
        ]);
        let kept = all.without(&["environments-v2".into(), ".lock".into()]);
        assert_eq!(
            kept,
            set(&[
                ("+ file environments-v2-other/x", 1),
                ("+ file interpreter-v4/{hash}/{hash}.msgpack", 1),
            ])
        );
    }

    #[test]
    fn check_serializes_with_its_verdict() {
        let check = WriteCheck::Differs {
            reference: "pristine/none/S2/warm".into(),
            diff: WriteSetDiff {
                missing: vec!["+ file a".into()],
                extra: vec![],
            },
        };
        let json = serde_json::to_string(&check).unwrap();
        assert_eq!(
            json,
            r#"{"verdict":"differs","reference":"pristine/none/S2/warm","missing":["+ file a"],"extra":[]}"#
        );
        assert_eq!(serde_json::from_str::<WriteCheck>(&json).unwrap(), check);
        assert_eq!(
            check.to_string(),
            "writes differ from pristine/none/S2/warm's: missing + file a"
        );
    }
}
