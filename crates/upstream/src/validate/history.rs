//! `--history FILE`: the validated revisions as one Markdown document, generated, never typed.
//!
//! Each revision is a section between markers naming its commit and its comparison point. A
//! run replaces the sections of the revisions it validated and keeps the others (so the
//! revisions can be validated in separate sittings), in the order of their commit dates. The
//! header says how to regenerate it.

use std::fmt::Write as _;

use super::compare::Comparison;
use super::revision::Pair;

const BEGIN: &str = "<!-- validate ";
const END: &str = "<!-- /validate -->";

/// One validated revision, rendered.
pub(super) struct Section {
    /// The after revision's date and commit: the sort key.
    pub sort: String,
    pub text: String,
}

/// Render one pair's section.
pub(super) fn section(
    pair: &Pair,
    before_toolchain: &str,
    after_toolchain: &str,
    comparison: &Comparison,
) -> Section {
    let mut text = format!(
        "{BEGIN}{} vs {} -->\n### {} `{}`: {}\n\n\
         Before: `{}` ({}, {}), built with {before_toolchain}.  \n\
         After: `{}` ({}), built with {after_toolchain}.\n\n",
        pair.after.sha,
        pair.before.sha,
        pair.after.date,
        pair.after_name(),
        pair.after.subject,
        pair.before.short(),
        pair.how,
        pair.before.subject,
        pair.after_name(),
        pair.after.date,
    );
    text.push_str(&comparison.table());
    text.push_str(&comparison.changes());
    let _ = writeln!(text, "{END}");
    Section {
        sort: format!("{} {}", pair.after.date, pair.after.sha),
        text,
    }
}

/// The document: `existing` (the file's current text, if any) with `sections` put in place of
/// the sections of the same revisions, sorted by date, under a fresh header.
pub(super) fn merge(existing: Option<&str>, sections: Vec<Section>, command: &str) -> String {
    let mut all: Vec<Section> = existing.map(parse).unwrap_or_default();
    for new in sections {
        let first_line = new.text.lines().next().unwrap_or_default().to_string();
        all.retain(|old| old.text.lines().next() != Some(first_line.as_str()));
        all.push(new);
    }
    all.sort_by(|a, b| a.sort.cmp(&b.sort));
    let mut text = format!(
        "# uv's past read-only cache attempts, validated\n\n\
         <!-- Generated: do not edit. Regenerate a revision's section with\n     \
         {command}\n     \
         (the other sections are kept). -->\n\n\
         Each section is one astral-sh/uv revision built as it is and run through the fixture's \
         matrix (every sandbox this machine has, every scenario and cache state) beside the \
         revision it is compared with, by `cargo xtask upstream validate`. A cell *succeeds* \
         when uv exits 0 with the expected output and, inside a sandbox, the cache is \
         untouched; a cell skipped for either build is not counted. Turned green: fails \
         before, succeeds after; turned red: the reverse.\n\n"
    );
    for section in all {
        text.push_str(&section.text);
        text.push('\n');
    }
    text
}

/// The sections of an existing document.
fn parse(text: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after_start = &rest[start..];
        let Some(end) = after_start.find(END) else {
            break;
        };
        let body = &after_start[..end + END.len()];
        // `### <date> `<short>`: …` on the second line gives the sort key.
        let date = body
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("### "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default();
        let sha = body[BEGIN.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default();
        sections.push(Section {
            sort: format!("{date} {sha}"),
            text: format!("{body}\n"),
        });
        rest = &after_start[end + END.len()..];
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::super::revision::Revision;
    use super::*;

    fn pair(after: &str, date: &str) -> Pair {
        let rev = |sha: &str, date: &str| Revision {
            sha: sha.repeat(40 / sha.len()),
            asked: sha.into(),
            subject: format!("subject of {sha}"),
            date: date.into(),
        };
        Pair {
            before: rev("bb", "2026-01-01"),
            after: rev(after, date),
            how: "its parent".into(),
        }
    }

    #[test]
    fn sections_are_replaced_by_revision_and_kept_in_date_order() {
        let empty = Comparison::default();
        let first = merge(
            None,
            vec![
                section(
                    &pair("cc", "2026-02-10"),
                    "rustc 1.93.0",
                    "rustc 1.93.0",
                    &empty,
                ),
                section(
                    &pair("aa", "2026-02-06"),
                    "rustc 1.93.0",
                    "rustc 1.93.0",
                    &empty,
                ),
            ],
            "cargo xtask upstream validate <uv git dir> REV --history FILE",
        );
        assert!(
            first.find("`aaaaaaaaaa`").unwrap() < first.find("`cccccccccc`").unwrap(),
            "{first}"
        );
        assert!(first.contains("Generated: do not edit"), "{first}");
        assert!(first.contains(
            "| sandbox | cells | succeed before | succeed after | turned green | turned red |"
        ));
        // Validating `cc` again with another toolchain replaces its section only.
        let second = merge(
            Some(&first),
            vec![section(
                &pair("cc", "2026-02-10"),
                "rustc 1.95.0",
                "rustc 1.95.0",
                &empty,
            )],
            "cmd",
        );
        assert_eq!(second.matches(BEGIN).count(), 2, "{second}");
        assert!(second.contains("built with rustc 1.95.0"), "{second}");
        assert_eq!(second.matches("rustc 1.93.0").count(), 2, "{second}");
        assert!(second.find("`aaaaaaaaaa`").unwrap() < second.find("`cccccccccc`").unwrap());
    }
}
