//! The text of our patch files, seen as commits: the header becomes the commit message, the
//! rest is the diff. The header is read by `git mailinfo`, as `git am` reads a mail; the diff
//! through [`diff`]'s model.

use anyhow::{Context as _, Result, bail};
use std::path::Path;

use super::diff;
use super::git::git;

/// A patch file split into a commit message and its diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchText {
    pub subject: String,
    /// The "why" paragraph(s) and the upstream link; empty when the header has none.
    pub body: String,
    /// Everything from the first `diff --git` on.
    pub diff: String,
}

impl PatchText {
    /// Split a patch file (`Subject: …`, a blank line, the body, `---`, then `diff --git`
    /// sections) or a `git format-patch` mail as `git am` does: `git mailinfo` reads the
    /// subject (unfolded, a `[PATCH …]` tag dropped) and the message up to the first `---` or
    /// `diff` line; the diff is everything from the first `diff --git` on. Only the subject
    /// and at least one diff are required.
    pub(crate) fn parse(patch: &Path, text: &str) -> Result<Self> {
        let mail = mailinfo(text)
            .with_context(|| format!("{}: `git mailinfo` cannot read it", patch.display()))?;
        let diff = &mail.patch[uvfix_pipeline::patchfile::header(&mail.patch).len()..];
        if !diff.starts_with("diff --git ") {
            bail!(
                "{}: no diff (expected `diff --git a/… b/…` sections after the header)",
                patch.display()
            );
        }
        let subject = match mail.subject {
            None => bail!(
                "{}: no `Subject:` line in the header; it becomes the commit's subject",
                patch.display()
            ),
            Some(subject) if subject.is_empty() => {
                bail!("{}: the `Subject:` line is empty", patch.display())
            }
            Some(subject) => subject,
        };
        Ok(Self {
            subject,
            body: mail.message.trim().to_string(),
            diff: diff.to_string(),
        })
    }

    /// The commit message: subject, blank line, body.
    pub(crate) fn message(&self) -> String {
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
pub(crate) struct Rewrite {
    /// Sections dropped (`<crate>/<file>`): the normalized `Cargo.toml` crates.io generates,
    /// packaging files.
    pub dropped: Vec<String>,
    /// Crates whose `Cargo.toml.orig` (the author's manifest) was carried over as `Cargo.toml`.
    pub manifests_from_orig: Vec<String>,
}

impl Rewrite {
    /// Crates whose published `Cargo.toml` the patch changes but not the author's: the
    /// repository's manifest needs that change made by hand.
    pub(crate) fn manifest_changes_lost(&self) -> Vec<String> {
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
pub(crate) fn to_repository_paths(diff: &str) -> Result<(String, Rewrite)> {
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

/// What `git mailinfo` makes of a mail.
struct Mail {
    /// `None`: the mail has no `Subject:` header.
    subject: Option<String>,
    /// The message below the headers, up to the patch.
    message: String,
    /// From the first line `git am` takes for the patch's (`---`, `diff -…`) on.
    patch: String,
}

/// `git mailinfo -b` on `text`: `-b` drops only a bracketed tag that says PATCH
/// (`[PATCH 2/3]`), not every leading `[…]` (a `[uv-cache]` stays in the subject).
fn mailinfo(text: &str) -> Result<Mail> {
    let dir = tempfile::tempdir()?;
    let mail = dir.path().join("mail");
    fs_err::write(&mail, text)?;
    // Not through `uvfix_process`, which closes stdin: mailinfo reads the mail only there.
    let out = git(dir.path())
        .args(["mailinfo", "-b", "message", "patch"])
        .stdin(std::fs::File::open(&mail).with_context(|| format!("opening {}", mail.display()))?)
        .output()
        .context("cannot run git; is it installed?")?;
    if !out.status.success() {
        bail!(
            "`git mailinfo` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let info = String::from_utf8_lossy(&out.stdout);
    Ok(Mail {
        subject: info
            .lines()
            .find_map(|line| line.strip_prefix("Subject:"))
            .map(|subject| subject.trim().to_string()),
        message: fs_err::read_to_string(dir.path().join("message"))?,
        patch: fs_err::read_to_string(dir.path().join("patch"))?,
    })
}

/// Totals of `git diff --numstat` output: (files, lines added, lines removed). Binary files
/// (`-\t-\tpath`) count as files with no lines.
pub(crate) fn numstat(text: &str) -> (usize, usize, usize) {
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

    use crate::diff::tests::DIFF;

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

    #[test_case(
        "No subject here\n---\n",
        "x.patch: no `Subject:` line in the header; it becomes the commit's subject";
        "no subject"
    )]
    #[test_case("Subject:   \n---\n", "x.patch: the `Subject:` line is empty"; "empty subject")]
    #[test_case(
        "Subject: [PATCH]\n---\n",
        "x.patch: the `Subject:` line is empty";
        "nothing but the tag"
    )]
    fn header_without_subject_is_an_error(header: &str, message: &str) {
        let err = PatchText::parse(Path::new("x.patch"), &format!("{header}{DIFF}")).unwrap_err();
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn header_without_diff_is_an_error() {
        let err = PatchText::parse(Path::new("x.patch"), "Subject: s\n---\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.patch: no diff (expected `diff --git a/… b/…` sections after the header)"
        );
    }

    /// Only a tag that says PATCH is dropped (`git mailinfo -b`).
    #[test]
    fn other_bracketed_prefixes_stay_in_the_subject() {
        let parsed = PatchText::parse(
            Path::new("p"),
            &format!("Subject: [uv-cache] Fix it\n\n{DIFF}"),
        )
        .unwrap();
        assert_eq!(parsed.subject, "[uv-cache] Fix it");
    }

    /// What `upstream export` writes reads back as the commit it came from.
    #[test]
    fn a_format_patch_mail_is_read_as_git_am_reads_it() {
        let mail = format!(
            "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n\
             From: uvfix <uvfix@example.invalid>\n\
             Date: Thu, 1 Jan 2026 00:00:00 +0000\n\
             Subject: [PATCH 1/3] Say hello, at some length so\n that git folds it\n\n\
             Because it is polite.\n---\n\
             \x20src/lib.rs | 1 +\n\x201 file changed, 1 insertion(+)\n\n{DIFF}"
        );
        let parsed = PatchText::parse(Path::new("0001-Say-hello.patch"), &mail).unwrap();
        insta::assert_snapshot!(parsed.message(), @r"
        Say hello, at some length so that git folds it

        Because it is polite.
        ");
        assert_eq!(parsed.diff, DIFF);
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
