//! A lint for bash that must run in macOS's /bin/bash 3.2.57: it finds the bash 4+ syntax
//! and builtins our scripts could reach for.
//!
//! Hand-written because no tool checks this: shellcheck assumes bash 4+ and has no version
//! setting (its open requests koalaman/shellcheck#1738, #2615 and #2850 ask for exactly
//! this), and neither crates.io, PyPI nor npm has a bash-version linter. It is a line-based
//! pattern match, after comments are removed; it does not parse bash, so a pattern inside
//! a single-quoted string that is only data is reported too (rare, and then rewrite it).
//! Each construct says the bash release that brought it (bash's NEWS/CHANGES).

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Construct {
    /// `${x^^}`, `${x,,}`, `${x^}`, `${x,}`.
    CaseModification,
    /// `${x@Q}`, `${x@U}`, …
    Transformation,
    /// `declare -A` (also `local`/`typeset`/`readonly`).
    AssociativeArray,
    /// `declare -n`.
    Nameref,
    /// `declare -g`.
    GlobalDeclare,
    /// `declare -l` / `-u`.
    CaseAttribute,
    /// `mapfile`, `readarray`.
    Mapfile,
    /// `|&`.
    PipeStderr,
    /// `;&`, `;;&` in `case`.
    CaseFallthrough,
    /// `${a[-1]}`, `a[-1]=`.
    NegativeSubscript,
    /// `coproc`.
    Coproc,
    /// `&>>`.
    AppendBoth,
    /// `[[ -v x ]]`, `test -v x`.
    TestVariableSet,
    /// `wait -n`.
    WaitAny,
    /// `shopt -s globstar` and the other options bash 4+ added.
    NewShopt,
    /// `{1..10..2}`.
    BraceStep,
    /// `$EPOCHSECONDS`, `$EPOCHREALTIME`, `$BASHPID`, `$SRANDOM`.
    NewVariable,
    /// `"${a[@]}"` under `set -u`: bash before 4.4 calls an empty array unbound.
    EmptyArrayUnderNounset,
}

impl Construct {
    pub fn describe(self) -> &'static str {
        match self {
            Construct::CaseModification => "case modification ${x^^} ${x,,} (bash 4.0)",
            Construct::Transformation => "parameter transformation ${x@Q} (bash 4.4/5.1)",
            Construct::AssociativeArray => "associative array `declare -A` (bash 4.0)",
            Construct::Nameref => "nameref `declare -n` (bash 4.3)",
            Construct::GlobalDeclare => "`declare -g` (bash 4.2)",
            Construct::CaseAttribute => "case attribute `declare -l/-u` (bash 4.0)",
            Construct::Mapfile => "`mapfile`/`readarray` (bash 4.0)",
            Construct::PipeStderr => "`|&` (bash 4.0)",
            Construct::CaseFallthrough => "case fall-through `;&`/`;;&` (bash 4.0)",
            Construct::NegativeSubscript => "negative array subscript (bash 4.3)",
            Construct::Coproc => "`coproc` (bash 4.0)",
            Construct::AppendBoth => "`&>>` (bash 4.0)",
            Construct::TestVariableSet => "`-v VAR` test (bash 4.2)",
            Construct::WaitAny => "`wait -n` (bash 4.3)",
            Construct::NewShopt => "a shell option bash 3.2 lacks (bash 4.0+)",
            Construct::BraceStep => "brace expansion with a step {a..b..n} (bash 4.0)",
            Construct::NewVariable => "a variable bash 3.2 lacks ($BASHPID 4.0, $EPOCHSECONDS 5.0)",
            Construct::EmptyArrayUnderNounset => {
                "\"${a[@]}\" under `set -u`: bash before 4.4 fails on an empty array (\"unbound variable\"); write ${a[@]+\"${a[@]}\"}"
            }
        }
    }
}

/// One finding: a 1-based line, the construct, the line as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    pub line: usize,
    pub construct: Construct,
    pub text: String,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: `{}`",
            self.line,
            self.construct.describe(),
            self.text.trim()
        )
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

// A name, an optional subscript: what `${…}` starts with.
const NAME: &str = r"!?[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?";
// Where a command word may start.
const CMD: &str = r"(?:^|[\s;&|({]|\bthen\s|\bdo\s|\belse\s)";

static PATTERNS: LazyLock<Vec<(Construct, Regex)>> = LazyLock::new(|| {
    vec![
        (
            Construct::CaseModification,
            re(&format!(r"\$\{{{NAME}(?:\^\^|\^|,,|,)")),
        ),
        (
            Construct::Transformation,
            re(&format!(r"\$\{{{NAME}@[QEPAaULuKk]\}}")),
        ),
        (
            Construct::Mapfile,
            re(&format!(r"{CMD}(?:mapfile|readarray)(?:\s|$)")),
        ),
        (Construct::PipeStderr, re(r"\|&")),
        (Construct::CaseFallthrough, re(r";;&|(?:^|[^;]);&")),
        (
            Construct::NegativeSubscript,
            re(
                r"\$\{[A-Za-z_][A-Za-z0-9_]*\[\s*-\s*[0-9]|(?:^|[\s;])[A-Za-z_][A-Za-z0-9_]*\[-[0-9]+\]\+?=",
            ),
        ),
        (Construct::Coproc, re(&format!(r"{CMD}coproc(?:\s|$)"))),
        (Construct::AppendBoth, re(r"&>>")),
        (
            Construct::TestVariableSet,
            re(r"(?:\[\[|\[|\btest)\s+!?\s*-v\s"),
        ),
        (
            Construct::WaitAny,
            re(r"\bwait\s+(?:-[a-z]*\s+)*-[a-z]*n\b"),
        ),
        (
            Construct::NewShopt,
            re(
                r"\bshopt\s+-s\s+.*\b(?:globstar|lastpipe|autocd|checkjobs|dirspell|direxpand|globasciiranges|inherit_errexit|localvar_inherit|localvar_unset|assoc_expand_once|compat[0-9]+)\b",
            ),
        ),
        (
            Construct::BraceStep,
            re(r"\{-?[0-9a-zA-Z]+\.\.-?[0-9a-zA-Z]+\.\.-?[0-9]+\}"),
        ),
        (
            Construct::NewVariable,
            re(r"\$\{?(?:EPOCHSECONDS|EPOCHREALTIME|BASHPID|SRANDOM)\b"),
        ),
    ]
});

static DECLARE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"{CMD}(?:declare|typeset|local|readonly)((?:\s+[-+][A-Za-z]+)+)"
    ))
});
static NOUNSET: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?m)^\s*set\s+(?:-[A-Za-z]*u[A-Za-z]*|.*-o\s+nounset)\b"));
static ARRAY_ALL: LazyLock<Regex> =
    LazyLock::new(|| re(r#""\$\{([A-Za-z_][A-Za-z0-9_]*)\[[@*]\]\}""#));

/// Every bash 4+ construct in `script`, by line.
pub fn lint(script: &str) -> Vec<Lint> {
    let nounset = script
        .lines()
        .map(strip_comment_line)
        .any(|l| NOUNSET.is_match(&l));
    let mut lints = Vec::new();
    let mut quote = Quote::None;
    for (index, raw) in script.lines().enumerate() {
        let code = strip_comment(raw, &mut quote);
        let mut found = |construct| {
            lints.push(Lint {
                line: index + 1,
                construct,
                text: raw.to_owned(),
            });
        };
        for (construct, pattern) in PATTERNS.iter() {
            if pattern.is_match(&code) {
                found(*construct);
            }
        }
        for flags in DECLARE.captures_iter(&code) {
            let flags = &flags[1];
            let set: Vec<char> = flags
                .split_whitespace()
                .filter(|f| f.starts_with('-'))
                .flat_map(|f| f.chars().skip(1))
                .collect();
            for (flag, construct) in [
                ('A', Construct::AssociativeArray),
                ('n', Construct::Nameref),
                ('g', Construct::GlobalDeclare),
                ('l', Construct::CaseAttribute),
                ('u', Construct::CaseAttribute),
            ] {
                if set.contains(&flag) {
                    found(construct);
                }
            }
        }
        if nounset {
            for array in ARRAY_ALL.captures_iter(&code) {
                let guard = format!("${{{}[@]+", &array[1]);
                let guard_star = format!("${{{}[*]+", &array[1]);
                if !code.contains(&guard) && !code.contains(&guard_star) {
                    found(Construct::EmptyArrayUnderNounset);
                }
            }
        }
    }
    lints.dedup_by(|a, b| a.line == b.line && a.construct == b.construct);
    lints
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

fn strip_comment_line(line: &str) -> String {
    strip_comment(line, &mut Quote::None)
}

/// The line without its comment; `quote` carries an open quote over to the next line.
fn strip_comment(line: &str, quote: &mut Quote) -> String {
    let mut out = String::with_capacity(line.len());
    let mut prev = ' ';
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (*quote, c) {
            (Quote::None, '#') if prev.is_whitespace() || prev == ';' => break,
            (Quote::None, '\'') => *quote = Quote::Single,
            (Quote::None, '"') => *quote = Quote::Double,
            (Quote::Single, '\'') | (Quote::Double, '"') => *quote = Quote::None,
            (Quote::None | Quote::Double, '\\') => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                    prev = next;
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
        prev = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Each line of the fixture that ends in `# expect: Construct` must be reported with
    /// exactly that construct, and no other line may be reported.
    #[test]
    fn every_bash4_construct_in_the_fixture_is_found() {
        let fixture = include_str!("../tests/fixtures/bash4.sh");
        let mut expected = BTreeSet::new();
        for (index, line) in fixture.lines().enumerate() {
            if let Some((_, name)) = line.split_once("# expect: ") {
                expected.insert((index + 1, name.trim().to_owned()));
            }
        }
        let found: BTreeSet<(usize, String)> = lint(fixture)
            .into_iter()
            .map(|l| (l.line, format!("{:?}", l.construct)))
            .collect();
        assert_eq!(found, expected);
        // Every construct the lint knows is in the fixture.
        let covered: BTreeSet<&str> = expected.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(covered.len(), 18, "constructs covered: {covered:?}");
    }

    #[test]
    fn bash_3_2_code_that_looks_alike_is_clean() {
        let fixture = include_str!("../tests/fixtures/bash32-safe.sh");
        assert_eq!(lint(fixture), Vec::new());
    }
}
