//! The one diff model of these commands: a git diff is what diffy's git-diff parser makes of
//! it ([`files`]), as it is for the pipeline's strict patch engine
//! (`uvfix_pipeline::patchfile`). What we do with a diff here is read its files and hunks,
//! and rename its files ([`map_paths`]: `crates/` prefixes added or dropped, the files a
//! release moved, the manifests crates.io generated); the hunks themselves are never touched.
//!
//! Writing a diff back is ours ([`render`]): diffy 0.5 can parse a `diff --git` file's
//! extended headers but not write them, has no way to rename a parsed patch's files, and its
//! `PatchFormatter` writes a hunk's function context (`@@ -1,3 +1,4 @@ fn main() {`) with a
//! space too many and an empty line after it, which a later tool would read as a context line
//! (pinned by a test below, so a diffy that fixes it is noticed).

use std::fmt::Write as _;

use anyhow::{Result, anyhow, bail};
use diffy::patch_set::{FileMode, FileOperation, FilePatch, ParseOptions, PatchSet};
use diffy::{Hunk, Line};

/// A git diff's files, in order. Text before the first `diff --git` line (a patch file's
/// header, a mail's message) is skipped.
pub(crate) fn files(diff: &str) -> Result<Vec<FilePatch<'_, str>>> {
    PatchSet::parse(diff, ParseOptions::gitdiff())
        .map(|file| file.map_err(|err| anyhow!("not a git diff: {err}")))
        .collect()
}

/// A file's old and new path without git's `a/` and `b/` (`None`: `/dev/null`).
fn paths(file: &FilePatch<'_, str>) -> Result<(Option<String>, Option<String>)> {
    Ok(match file.operation().strip_prefix(1) {
        FileOperation::Create(path) => (None, Some(path.into_owned())),
        FileOperation::Delete(path) => (Some(path.into_owned()), None),
        FileOperation::Modify { original, modified } if original == modified => {
            (Some(original.into_owned()), Some(modified.into_owned()))
        }
        other => {
            bail!("{other:?}: renames and copies are not supported; write them as delete + create")
        }
    })
}

/// The file a file patch is about, without git's prefix: its new path, the old one for a
/// deletion (`uv-cache/src/lib.rs`).
pub(crate) fn path(file: &FilePatch<'_, str>) -> Result<String> {
    let (old, new) = paths(file)?;
    Ok(new.or(old).unwrap_or_default())
}

/// The files a diff changes ([`path`]), in order.
pub(crate) fn file_paths(diff: &str) -> Result<Vec<String>> {
    files(diff)?.iter().map(path).collect()
}

/// A hunk's header without its function context: `@@ -1,3 +1,4 @@`.
pub(crate) fn hunk_header(hunk: &Hunk<'_, str>) -> String {
    format!("@@ -{} +{} @@", hunk.old_range(), hunk.new_range())
}

/// The hunk headers of a git diff ([`hunk_header`]), grouped by file ([`path`]) in order.
pub(crate) fn hunk_headers(diff: &str) -> Result<Vec<(String, Vec<String>)>> {
    files(diff)?
        .iter()
        .map(|file| {
            let headers = match file.patch().as_text() {
                Some(patch) => patch.hunks().iter().map(hunk_header).collect(),
                None => Vec::new(),
            };
            Ok((path(file)?, headers))
        })
        .collect()
}

/// The diff with each file's path (as [`path`] names it) replaced by `rename(path)`, or the
/// file left out where that is `None`. Hunks are kept as they are; `index` lines, which only
/// a three-way merge reads, are not.
pub(crate) fn map_paths(
    diff: &str,
    mut rename: impl FnMut(&str) -> Option<String>,
) -> Result<String> {
    let mut out = String::with_capacity(diff.len());
    for file in files(diff)? {
        let (old, new) = paths(&file)?;
        let Some(renamed) = rename(new.as_deref().or(old.as_deref()).unwrap_or_default()) else {
            continue;
        };
        let old = old.map(|_| renamed.clone());
        let new = new.map(|_| renamed);
        render(&mut out, &file, old.as_deref(), new.as_deref())?;
    }
    Ok(out)
}

/// Write one file of a git diff: `diff --git`, its mode lines, `---`/`+++` and the hunks,
/// as git writes them (no `index` line).
fn render(
    out: &mut String,
    file: &FilePatch<'_, str>,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<()> {
    let Some(patch) = file.patch().as_text() else {
        bail!("binary patches are not supported");
    };
    let either = new.or(old).unwrap_or_default();
    let _ = writeln!(
        out,
        "diff --git a/{} b/{}",
        old.unwrap_or(either),
        new.unwrap_or(either)
    );
    match (old, new, file.old_mode(), file.new_mode()) {
        (None, _, _, Some(mode)) => {
            let _ = writeln!(out, "new file mode {}", octal(*mode));
        }
        (_, None, Some(mode), _) => {
            let _ = writeln!(out, "deleted file mode {}", octal(*mode));
        }
        (Some(_), Some(_), Some(before), Some(after)) => {
            let _ = writeln!(
                out,
                "old mode {}\nnew mode {}",
                octal(*before),
                octal(*after)
            );
        }
        _ => {}
    }
    // A file without hunks (a mode change, an empty new file) has no `---`/`+++` either.
    if patch.hunks().is_empty() {
        return Ok(());
    }
    let name = |prefix: &str, path: Option<&str>| {
        path.map_or_else(|| "/dev/null".to_string(), |p| format!("{prefix}{p}"))
    };
    let _ = writeln!(out, "--- {}\n+++ {}", name("a/", old), name("b/", new));
    for hunk in patch.hunks() {
        out.push_str(&hunk_header(hunk));
        if let Some(context) = hunk.function_context() {
            out.push(' ');
            out.push_str(context.trim_end_matches('\n'));
        }
        out.push('\n');
        for line in hunk.lines() {
            let (sign, text) = match line {
                Line::Context(text) => (' ', text),
                Line::Delete(text) => ('-', text),
                Line::Insert(text) => ('+', text),
            };
            out.push(sign);
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    Ok(())
}

/// A file mode as git writes it; diffy parses it but has no way to write it.
fn octal(mode: FileMode) -> &'static str {
    match mode {
        FileMode::Regular => "100644",
        FileMode::Executable => "100755",
        FileMode::Symlink => "120000",
        FileMode::Gitlink => "160000",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two files, a hunk with function context and a new file: shared with `message`'s tests.
    pub(crate) const DIFF: &str = "diff --git a/src/lib.rs b/src/lib.rs\n\
        --- a/src/lib.rs\n+++ b/src/lib.rs\n\
        @@ -1,3 +1,4 @@ fn main() {\n a\n+b\n c\n d\n\
        @@ -10,2 +11,2 @@\n-x\n+y\n z\n\
        diff --git a/src/new.rs b/src/new.rs\nnew file mode 100644\n\
        --- /dev/null\n+++ b/src/new.rs\n@@ -0,0 +1 @@\n+new\n";

    #[test]
    fn lists_hunk_headers_per_file() {
        assert_eq!(
            hunk_headers(DIFF).unwrap(),
            [
                (
                    "src/lib.rs".to_string(),
                    vec![
                        "@@ -1,3 +1,4 @@".to_string(),
                        "@@ -10,2 +11,2 @@".to_string()
                    ]
                ),
                ("src/new.rs".to_string(), vec!["@@ -0,0 +1 @@".to_string()]),
            ]
        );
    }

    /// Every patch and fixup the fixture carries comes back byte for byte through the model.
    #[test]
    fn the_stacks_own_diffs_survive_unchanged() {
        let patches = concat!(env!("CARGO_MANIFEST_DIR"), "/../../patches");
        let mut seen = 0;
        for dir in ["stack", "0.13.6/stack", "0.13.6/fixups"] {
            for entry in fs_err::read_dir(format!("{patches}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "patch") {
                    continue;
                }
                let text = fs_err::read_to_string(&path).unwrap();
                let diff = &text[uvfix_pipeline::patchfile::header(&text).len()..];
                assert_eq!(
                    map_paths(diff, |p| Some(p.to_string())).unwrap(),
                    diff,
                    "{}",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(seen >= 9, "only {seen} patch files under {patches}");
    }

    /// What git writes and the rest of the model keeps: a function context, a missing newline
    /// at the end, a new and a deleted file, a mode change; `index` lines go.
    #[test]
    fn paths_are_mapped_and_files_dropped() {
        let exported = "diff --git a/crates/a/src/lib.rs b/crates/a/src/lib.rs\n\
            index 1111111..2222222 100644\n\
            --- a/crates/a/src/lib.rs\n+++ b/crates/a/src/lib.rs\n\
            @@ -1,2 +1,2 @@ impl Cache {\n a\n--- a/crates/a/src/lib.rs\n+b\n\\ No newline at end of file\n\
            diff --git a/crates/a/Cargo.toml b/crates/a/Cargo.toml\n\
            --- a/crates/a/Cargo.toml\n+++ b/crates/a/Cargo.toml\n@@ -1 +1 @@\n-x\n+y\n\
            diff --git a/crates/b/new.rs b/crates/b/new.rs\nnew file mode 100644\n\
            index 0000000..3333333\n--- /dev/null\n+++ b/crates/b/new.rs\n@@ -0,0 +1 @@\n+new\n\
            diff --git a/crates/b/old.rs b/crates/b/old.rs\ndeleted file mode 100644\n\
            --- a/crates/b/old.rs\n+++ /dev/null\n@@ -1 +0,0 @@\n-old\n\
            diff --git a/crates/b/run.sh b/crates/b/run.sh\nold mode 100644\nnew mode 100755\n";
        let mapped = map_paths(exported, |path| {
            (!path.ends_with("Cargo.toml")).then(|| path.strip_prefix("crates/").unwrap().into())
        })
        .unwrap();
        insta::assert_snapshot!(mapped, @r"
        diff --git a/a/src/lib.rs b/a/src/lib.rs
        --- a/a/src/lib.rs
        +++ b/a/src/lib.rs
        @@ -1,2 +1,2 @@ impl Cache {
         a
        --- a/crates/a/src/lib.rs
        +b
        \ No newline at end of file
        diff --git a/b/new.rs b/b/new.rs
        new file mode 100644
        --- /dev/null
        +++ b/b/new.rs
        @@ -0,0 +1 @@
        +new
        diff --git a/b/old.rs b/b/old.rs
        deleted file mode 100644
        --- a/b/old.rs
        +++ /dev/null
        @@ -1 +0,0 @@
        -old
        diff --git a/b/run.sh b/b/run.sh
        old mode 100644
        new mode 100755
        ");
        assert_eq!(
            file_paths(exported).unwrap(),
            [
                "crates/a/src/lib.rs",
                "crates/a/Cargo.toml",
                "crates/b/new.rs",
                "crates/b/old.rs",
                "crates/b/run.sh"
            ]
        );
    }

    #[test]
    fn what_the_model_cannot_write_is_refused() {
        let renamed = "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n";
        let err = map_paths(renamed, |p| Some(p.into())).unwrap_err();
        assert!(err.to_string().contains("renames and copies"), "{err}");
        let err = files("no diff here\n").unwrap_err();
        assert!(err.to_string().starts_with("not a git diff"), "{err}");
    }

    /// Why [`render`] writes hunks itself: diffy 0.5's formatter doubles the space before a
    /// function context and follows it with an empty line. When this fails, diffy writes hunks
    /// as git does and `render` can use its `PatchFormatter`.
    #[test]
    fn diffy_still_mangles_a_function_context() {
        let text = "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@ fn main() {\n a\n-b\n+c\n";
        let patch = diffy::Patch::from_str(text).unwrap();
        let written = diffy::PatchFormatter::new()
            .suppress_blank_empty(false)
            .fmt_patch(&patch)
            .to_string();
        assert_eq!(
            written,
            "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@  fn main() {\n\n a\n-b\n+c\n"
        );
    }
}
