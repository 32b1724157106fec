//! What GNU `patch --verbose` said about each hunk. GNU patch does the matching (offsets,
//! fuzz, reversed-patch detection); this only reads its report, in the C locale.

use std::fmt;

/// Why patch skipped a whole file's hunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// "Reversed (or previously applied) patch detected": the change is already there.
    AlreadyApplied,
    /// The file to patch does not exist.
    MissingFile,
    /// The patch creates a file that already exists.
    FileExists,
    /// patch gave no reason we recognise.
    Other,
}

/// The outcome of one hunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Applies,
    Offset(i64),
    Fuzz { fuzz: u32, offset: i64 },
    Fails,
    Skipped(Skip),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Applies => f.write_str("applies"),
            Status::Offset(n) => write!(f, "applies with offset {n}"),
            Status::Fuzz { fuzz, offset: 0 } => write!(f, "applies with fuzz {fuzz}"),
            Status::Fuzz { fuzz, offset } => {
                write!(f, "applies with fuzz {fuzz} and offset {offset}")
            }
            Status::Fails => f.write_str("FAILS"),
            Status::Skipped(Skip::AlreadyApplied) => {
                f.write_str("skipped: already applied (patch looks reversed)")
            }
            Status::Skipped(Skip::MissingFile) => f.write_str("skipped: file does not exist"),
            Status::Skipped(Skip::FileExists) => f.write_str("skipped: file already exists"),
            Status::Skipped(Skip::Other) => f.write_str("skipped"),
        }
    }
}

/// One `Hunk #N …` line, with the file it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hunk {
    /// Path as patch reported it (after `-p1`).
    pub file: String,
    /// 1-based, per file, as patch counts.
    pub number: usize,
    /// The line patch matched (or tried) it at.
    pub line: usize,
    pub status: Status,
}

/// Parse the stdout of `patch --verbose [--dry-run]` (run with `LC_ALL=C`).
pub(crate) fn parse(output: &str) -> Vec<Hunk> {
    let mut file = String::new();
    let mut skip: Option<Skip> = None;
    let mut hunks = Vec::new();
    for line in output.lines() {
        // The quoted patch text ("The text leading up to this was: |…") names the file even
        // when patch cannot find it.
        if let Some(quoted) = line.strip_prefix('|') {
            if let Some(rest) = quoted.strip_prefix("diff --git ") {
                if let Some(b) = rest.split_whitespace().last() {
                    file = strip_one(b).to_string();
                }
            } else if let Some(rest) = quoted.strip_prefix("+++ ") {
                let name = rest.split('\t').next().unwrap_or(rest).trim();
                if name != "/dev/null" {
                    file = strip_one(name).to_string();
                }
            }
            continue;
        }
        if let Some(name) = line
            .strip_prefix("checking file ")
            .or_else(|| line.strip_prefix("patching file "))
        {
            file = unquote(name).to_string();
            skip = None;
        } else if line.contains("can't find file to patch") {
            skip = Some(Skip::MissingFile);
        } else if line.contains("Reversed (or previously applied) patch detected") {
            skip = Some(Skip::AlreadyApplied);
        } else if let Some(at) = line.find("would create the file ") {
            let rest = &line[at + "would create the file ".len()..];
            file = unquote(rest.trim_end_matches(',')).to_string();
            skip = Some(Skip::FileExists);
        } else if let Some(at) = line.find("would delete the file ") {
            let rest = &line[at + "would delete the file ".len()..];
            file = unquote(rest.trim_end_matches(',')).to_string();
            skip = Some(Skip::MissingFile);
        } else if let Some(hunk) = parse_hunk(line, skip) {
            hunks.push(Hunk {
                file: file.clone(),
                ..hunk
            });
        }
    }
    hunks
}

/// `Hunk #2 succeeded at 50 with fuzz 2 (offset 3 lines).` and its siblings.
fn parse_hunk(line: &str, skip: Option<Skip>) -> Option<Hunk> {
    let rest = line.strip_prefix("Hunk #")?;
    let (number, rest) = rest.split_once(' ')?;
    let number = number.parse().ok()?;
    let at = |word: &str| -> Option<usize> {
        let after = rest.split_once(word)?.1;
        let digits: String = after
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let line_no = at(" at ").unwrap_or(0);
    let status = if rest.starts_with("succeeded") {
        let offset = rest
            .split_once("(offset ")
            .and_then(|(_, o)| o.split_whitespace().next())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0);
        match rest
            .split_once("with fuzz ")
            .and_then(|(_, f)| f.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(fuzz) => Status::Fuzz { fuzz, offset },
            None if offset != 0 => Status::Offset(offset),
            None => Status::Applies,
        }
    } else if rest.starts_with("FAILED") {
        Status::Fails
    } else if rest.starts_with("ignored") {
        Status::Skipped(skip.unwrap_or(Skip::Other))
    } else if rest.starts_with("already applied") {
        Status::Skipped(Skip::AlreadyApplied)
    } else {
        return None;
    };
    Some(Hunk {
        file: String::new(),
        number,
        line: line_no,
        status,
    })
}

/// `b/src/lib.rs` → `src/lib.rs` (what `-p1` does).
fn strip_one(path: &str) -> &str {
    path.split_once('/').map_or(path, |(_, rest)| rest)
}

/// patch quotes names with unusual characters: `'src/a b.rs'`.
fn unquote(name: &str) -> &str {
    let name = name.trim();
    name.strip_prefix('\'')
        .and_then(|n| n.strip_suffix('\''))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// How GNU patch 2.7.6 (`LC_ALL=C patch --dry-run -p1 --verbose --forward --batch`)
    /// starts on a file it finds (`$lead`: `Looks like` for the first file, `The next patch
    /// looks like` after it); the outputs below are real, trimmed only of the dashed rules.
    macro_rules! file_start {
        ($lead:literal, $file:literal) => {
            concat!(
                "Hmm...  ",
                $lead,
                " a unified diff to me...\n",
                "The text leading up to this was:\n",
                "--------------------------\n",
                "|diff --git a/",
                $file,
                " b/",
                $file,
                "\n",
                "|--- a/",
                $file,
                "\n",
                "|+++ b/",
                $file,
                "\n",
                "--------------------------\n",
                "checking file ",
                $file,
                "\n",
                "Using Plan A...\n",
            )
        };
    }

    const MIXED: &str = concat!(
        file_start!("Looks like", "src/lib.rs"),
        "\
Hunk #1 FAILED at 7.
Hunk #2 succeeded at 50 with fuzz 2 (offset 3 lines).
Hunk #3 succeeded at 90 with fuzz 1.
Hunk #4 succeeded at 120 (offset -4 lines).
Hunk #5 succeeded at 140 (offset 1 line).
Hunk #6 succeeded at 200.
1 out of 6 hunks FAILED
Hmm...  The next patch looks like a unified diff to me...
The text leading up to this was:
--------------------------
|diff --git a/src/new.rs b/src/new.rs
|new file mode 100644
|--- /dev/null
|+++ b/src/new.rs
--------------------------
checking file src/new.rs
Using Plan A...
Hunk #1 succeeded at 1.
done
"
    );

    #[test]
    fn reads_every_kind_of_success_and_failure() {
        let got: Vec<_> = parse(MIXED)
            .into_iter()
            .map(|h| (h.file, h.number, h.line, h.status))
            .collect();
        let lib = "src/lib.rs".to_string();
        assert_eq!(
            got,
            [
                (lib.clone(), 1, 7, Status::Fails),
                (lib.clone(), 2, 50, Status::Fuzz { fuzz: 2, offset: 3 }),
                (lib.clone(), 3, 90, Status::Fuzz { fuzz: 1, offset: 0 }),
                (lib.clone(), 4, 120, Status::Offset(-4)),
                (lib.clone(), 5, 140, Status::Offset(1)),
                (lib, 6, 200, Status::Applies),
                ("src/new.rs".to_string(), 1, 1, Status::Applies),
            ]
        );
    }

    const REVERSED_AND_EXISTING: &str = concat!(
        file_start!("Looks like", "src/lib.rs"),
        "\
Reversed (or previously applied) patch detected!  Skipping patch.
Hunk #1 ignored at 7.
Hunk #2 ignored at 47.
2 out of 2 hunks ignored
Hmm...The next patch would create the file src/new.rs,
which already exists!  Skipping patch.
Hunk #1 ignored at 1.
1 out of 1 hunk ignored
done
"
    );

    const MISSING: &str = concat!(
        "\
Hmm...  Looks like a unified diff to me...
can't find file to patch at input line 4
Perhaps you used the wrong -p or --strip option?
The text leading up to this was:
--------------------------
|diff --git a/src/gone.rs b/src/gone.rs
|--- a/src/gone.rs
|+++ b/src/gone.rs
--------------------------
No file to patch.  Skipping patch.
Hunk #1 ignored at 7.
1 out of 1 hunk ignored
",
        file_start!("The next patch looks like", "src/lib.rs"),
        "\
Hunk #1 succeeded at 3.
done
"
    );

    #[rstest]
    #[case::reversed_then_existing(REVERSED_AND_EXISTING, &[
        ("src/lib.rs", Status::Skipped(Skip::AlreadyApplied)),
        ("src/lib.rs", Status::Skipped(Skip::AlreadyApplied)),
        ("src/new.rs", Status::Skipped(Skip::FileExists)),
    ])]
    #[case::missing_then_ok(MISSING, &[
        ("src/gone.rs", Status::Skipped(Skip::MissingFile)),
        ("src/lib.rs", Status::Applies),
    ])]
    fn names_why_hunks_were_skipped(#[case] output: &str, #[case] expected: &[(&str, Status)]) {
        let got: Vec<_> = parse(output)
            .into_iter()
            .map(|h| (h.file, h.status))
            .collect();
        let expected: Vec<_> = expected.iter().map(|(f, s)| (f.to_string(), *s)).collect();
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case("Hunk #3 FAILED at 12 (different line endings).", 3, 12, Status::Fails)]
    #[case(
        "Hunk #1 already applied at 5.",
        1,
        5,
        Status::Skipped(Skip::AlreadyApplied)
    )]
    #[case(
        "Hunk #10 succeeded at 1000 (offset 250 lines).",
        10,
        1000,
        Status::Offset(250)
    )]
    fn single_lines(
        #[case] line: &str,
        #[case] number: usize,
        #[case] at: usize,
        #[case] status: Status,
    ) {
        let hunk = parse_hunk(line, None).unwrap();
        assert_eq!((hunk.number, hunk.line, hunk.status), (number, at, status));
    }

    #[rstest]
    #[case(Status::Applies, "applies")]
    #[case(Status::Offset(-3), "applies with offset -3")]
    #[case(Status::Fuzz { fuzz: 1, offset: 0 }, "applies with fuzz 1")]
    #[case(Status::Fuzz { fuzz: 2, offset: 7 }, "applies with fuzz 2 and offset 7")]
    #[case(Status::Fails, "FAILS")]
    fn statuses_read_as_the_report_says(#[case] status: Status, #[case] text: &str) {
        assert_eq!(status.to_string(), text);
    }
}
