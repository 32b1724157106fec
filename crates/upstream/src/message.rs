//! The text of our patch files, seen as commits: the header becomes the commit message, the
//! rest is the diff, read through [`diff`]'s model.

use anyhow::{Result, bail};
use std::path::Path;

use super::diff;

/// A patch file split into a commit message and its diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchText {
    pub subject: String,
    /// The "why" paragraph(s) and the upstream link; empty when the header has none.
    pub body: String,
    /// Everything from the first `diff --git` on.
    pub diff: String,
}

impl PatchText {
    /// Split a patch file: `Subject: …`, a blank line, the body, `---`, then `diff --git`
    /// sections. Only the subject and at least one diff are required.
    pub fn parse(patch: &Path, text: &str) -> Result<Self> {
        let header = uvfix_pipeline::patchfile::header(text);
        let diff = &text[header.len()..];
        if !diff.starts_with("diff --git ") {
            bail!(
                "{}: no diff (expected `diff --git a/… b/…` sections after the header)",
                patch.display()
            );
        }
        let mut lines = header.lines().peekable();
        let subject = loop {
            let Some(line) = lines.next() else {
                bail!(
                    "{}: no `Subject:` line in the header; it becomes the commit's subject",
                    patch.display()
                );
            };
            if let Some(rest) = line.strip_prefix("Subject:") {
                let mut subject = rest.trim().to_string();
                // RFC 2822 folding: continuation lines start with white space.
                while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
                    subject.push(' ');
                    subject.push_str(next.trim());
                }
                break strip_patch_tag(&subject).to_string();
            }
        };
        if subject.is_empty() {
            bail!("{}: the `Subject:` line is empty", patch.display());
        }
        let body: Vec<&str> = lines.take_while(|l| l.trim_end() != "---").collect();
        let body = body.join("\n").trim().to_string();
        Ok(Self {
            subject,
            body,
            diff: diff.to_string(),
        })
    }

    /// The commit message: subject, blank line, body.
    pub fn message(&self) -> String {
        if self.body.is_empty() {
            format!("{}\n", self.subject)
        } else {
            format!("{}\n\n{}\n", self.subject, self.body)
        }
    }
}

/// Files crates.io adds to a published crate that do not exist in the repository.
const PACKAGING_ONLY: [&str; 2] = [".cargo_vcs_info.json", "Cargo.lock"];

/// What [`to_repository_paths`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// Sections dropped (`<crate>/<file>`): the normalized `Cargo.toml` crates.io generates,
    /// packaging files.
    pub dropped: Vec<String>,
    /// Crates whose `Cargo.toml.orig` (the author's manifest) was carried over as `Cargo.toml`.
    pub manifests_from_orig: Vec<String>,
}

impl Rewrite {
    /// Crates whose published `Cargo.toml` the patch changes but not the author's: the
    /// repository's manifest needs that change made by hand.
    pub fn manifest_changes_lost(&self) -> Vec<String> {
        self.dropped
            .iter()
            .filter_map(|file| file.strip_suffix("/Cargo.toml"))
            .filter(|krate| !self.manifests_from_orig.iter().any(|k| k == krate))
            .map(str::to_string)
            .collect()
    }
}

/// Rewrite a diff written against crates as crates.io ships them (paths start with the
/// crate: `uv-cache/src/lib.rs`) into one against the crates as they live in the repository:
/// `Cargo.toml.orig` is the repository's `Cargo.toml`; the `Cargo.toml` crates.io generated
/// from it (and its packaging files) do not exist there. Paths stay relative to `crates/`.
pub fn to_repository_paths(diff: &str) -> Result<(String, Rewrite)> {
    let mut rewrite = Rewrite::default();
    let out = diff::map_paths(diff, |path| {
        let (krate, file) = path.split_once('/').unwrap_or(("", path));
        if file == "Cargo.toml" || PACKAGING_ONLY.contains(&file) {
            rewrite.dropped.push(path.to_string());
            None
        } else if file == "Cargo.toml.orig" {
            rewrite.manifests_from_orig.push(krate.to_string());
            Some(format!("{krate}/Cargo.toml"))
        } else {
            Some(path.to_string())
        }
    })?;
    Ok((out, rewrite))
}

/// `[PATCH 2/3] Subject` → `Subject`.
fn strip_patch_tag(subject: &str) -> &str {
    if subject.starts_with("[PATCH")
        && let Some(end) = subject.find(']')
    {
        return subject[end + 1..].trim_start();
    }
    subject
}

/// Totals of `git diff --numstat` output: (files, lines added, lines removed). Binary files
/// (`-\t-\tpath`) count as files with no lines.
pub fn numstat(text: &str) -> (usize, usize, usize) {
    let mut totals = (0, 0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split('\t');
        let added = fields.next().and_then(|f| f.parse::<usize>().ok());
        let removed = fields.next().and_then(|f| f.parse::<usize>().ok());
        totals.0 += 1;
        totals.1 += added.unwrap_or(0);
        totals.2 += removed.unwrap_or(0);
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    const DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs\n\
        --- a/src/lib.rs\n+++ b/src/lib.rs\n\
        @@ -1,3 +1,4 @@ fn main() {\n a\n+b\n c\n d\n\
        @@ -10,2 +11,2 @@\n-x\n+y\n z\n\
        diff --git a/src/new.rs b/src/new.rs\nnew file mode 100644\n\
        --- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1 @@\n+new\n";

    #[test]
    fn splits_header_into_message_and_diff() {
        let text = format!(
            "Subject: Open the cache read-only when it is not writable\n\nuv fails when…\nsecond line.\n\n\
             Upstream: https://github.com/astral-sh/uv/issues/16820\n---\n{DIFF}"
        );
        let parsed = PatchText::parse(Path::new("p.patch"), &text).unwrap();
        assert_eq!(
            parsed.subject,
            "Open the cache read-only when it is not writable"
        );
        assert_eq!(
            parsed.body,
            "uv fails when…\nsecond line.\n\nUpstream: https://github.com/astral-sh/uv/issues/16820"
        );
        assert_eq!(parsed.diff, DIFF);
        assert_eq!(
            parsed.message(),
            format!("{}\n\n{}\n", parsed.subject, parsed.body)
        );
    }

    #[test_case("Subject: [PATCH] Fix it\n---\n", "Fix it", ""; "patch tag")]
    #[test_case("Subject: [PATCH 2/3] Fix it\n\nBecause.\n---\n", "Fix it", "Because."; "numbered tag")]
    #[test_case("From: x\nSubject: A long\n subject\n\nWhy.\n", "A long subject", "Why."; "folded, no dashes")]
    fn subject_and_body(header: &str, subject: &str, body: &str) {
        let parsed = PatchText::parse(Path::new("p"), &format!("{header}{DIFF}")).unwrap();
        assert_eq!(
            (parsed.subject.as_str(), parsed.body.as_str()),
            (subject, body)
        );
    }

    #[test_case("No subject here\n---\n"; "no subject")]
    #[test_case("Subject:   \n---\n"; "empty subject")]
    fn header_without_subject_is_an_error(header: &str) {
        let err = PatchText::parse(Path::new("x.patch"), &format!("{header}{DIFF}")).unwrap_err();
        assert!(err.to_string().contains("x.patch"), "{err}");
    }

    #[test]
    fn header_without_diff_is_an_error() {
        let err = PatchText::parse(Path::new("x.patch"), "Subject: s\n---\n").unwrap_err();
        assert!(err.to_string().contains("no diff"), "{err}");
    }

    const PUBLISHED: &str = "diff --git a/uv-cache/Cargo.toml b/uv-cache/Cargo.toml\n--- a/uv-cache/Cargo.toml\n+++ b/uv-cache/Cargo.toml\n\
        @@ -154 +154,3 @@\n x\n+\n+[dev-dependencies.tokio]\n\
        diff --git a/uv-cache/Cargo.toml.orig b/uv-cache/Cargo.toml.orig\n--- a/uv-cache/Cargo.toml.orig\n+++ b/uv-cache/Cargo.toml.orig\n\
        @@ -37 +37,3 @@\n walkdir = { workspace = true }\n+\n+[dev-dependencies]\n\
        diff --git a/uv-fs/src/lib.rs b/uv-fs/src/lib.rs\n--- a/uv-fs/src/lib.rs\n+++ b/uv-fs/src/lib.rs\n@@ -1 +1 @@\n-a\n+b\n";

    #[test]
    fn published_manifest_is_dropped_and_the_original_becomes_cargo_toml() {
        let (diff, rewrite) = to_repository_paths(PUBLISHED).unwrap();
        assert_eq!(
            diff,
            "diff --git a/uv-cache/Cargo.toml b/uv-cache/Cargo.toml\n--- a/uv-cache/Cargo.toml\n+++ b/uv-cache/Cargo.toml\n\
             @@ -37 +37,3 @@\n walkdir = { workspace = true }\n+\n+[dev-dependencies]\n\
             diff --git a/uv-fs/src/lib.rs b/uv-fs/src/lib.rs\n--- a/uv-fs/src/lib.rs\n+++ b/uv-fs/src/lib.rs\n@@ -1 +1 @@\n-a\n+b\n"
        );
        assert_eq!(
            rewrite,
            Rewrite {
                dropped: vec!["uv-cache/Cargo.toml".into()],
                manifests_from_orig: vec!["uv-cache".into()]
            }
        );
        assert!(rewrite.manifest_changes_lost().is_empty());
    }

    #[test]
    fn a_published_manifest_change_without_the_original_is_flagged() {
        let only_published = PUBLISHED
            .split("diff --git a/uv-cache/Cargo.toml.orig")
            .next()
            .unwrap();
        let (diff, rewrite) = to_repository_paths(only_published).unwrap();
        assert_eq!(diff, "");
        assert_eq!(rewrite.manifest_changes_lost(), ["uv-cache"]);
    }

    #[test]
    fn source_only_diffs_are_untouched() {
        assert_eq!(
            to_repository_paths(DIFF).unwrap(),
            (DIFF.to_string(), Rewrite::default())
        );
    }

    #[test_case("", (0, 0, 0); "empty")]
    #[test_case("3\t1\tcrates/a/src/lib.rs\n10\t0\tcrates/a/src/new.rs\n", (2, 13, 1); "two files")]
    #[test_case("-\t-\tcrates/a/logo.png\n1\t1\tx\n", (2, 1, 1); "binary")]
    fn sums_numstat(text: &str, expected: (usize, usize, usize)) {
        assert_eq!(numstat(text), expected);
    }
}
