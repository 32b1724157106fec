//! What a person reads in a terminal after a matrix run: one line of counts per sandbox ×
//! build, then every FAIL with its reason and the command that reruns exactly that cell,
//! then why sandboxes were skipped. Fits 100 columns; the full grid is in `matrix.md`.

use std::fmt::Write as _;

use uvfix_sandbox::Sandbox;

use super::{Summary, ordered};
use crate::build::Build;
use crate::cell::CellResult;
use crate::expect::Outcome;

/// Terminal width the summary keeps to: reasons are wrapped (never cut: the end of a skip
/// reason is often the command that installs what is missing), rerun commands stay on one line.
pub(super) const WIDTH: usize = 100;

/// The summary of `results`.
pub fn render_summary(results: &[CellResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<17} {:<18} {:>6} {:>6} {:>6} {:>6}",
        "sandbox", "build", "pass", "xfail", "FAIL", "skip"
    );
    let sandboxes = ordered(results.iter().map(|r| r.sandbox));
    let builds = ordered(results.iter().map(|r| &r.uv_label));
    for &sandbox in &sandboxes {
        for &build in &builds {
            let cells: Vec<CellResult> = results
                .iter()
                .filter(|r| r.sandbox == sandbox && &r.uv_label == build)
                .cloned()
                .collect();
            if cells.is_empty() {
                continue;
            }
            let s = Summary::of(&cells);
            let _ = writeln!(
                out,
                "{:<17} {:<18} {:>6} {:>6} {:>6} {:>6}",
                sandbox.name(),
                build.to_string(),
                s.pass,
                s.xfail,
                s.fail,
                s.skip
            );
        }
    }
    failures(&mut out, results);
    skips(&mut out, results, &sandboxes);
    out.push_str(&Summary::of(results).line());
    out.push('\n');
    out
}

fn failures(out: &mut String, results: &[CellResult]) {
    for r in results {
        if let Outcome::Fail(reason) = &r.outcome {
            let name = format!("{}/{}/{}/{}", r.uv_label, r.sandbox, r.scenario, r.state);
            let _ = writeln!(out, "\n{}", wrap(&format!("FAIL {name}: {reason}"), "    "));
            let _ = writeln!(out, "  rerun: {}", rerun(&r.uv_label, &name, r));
        }
    }
}

fn skips(out: &mut String, results: &[CellResult], sandboxes: &[Sandbox]) {
    let mut first = true;
    for sandbox in sandboxes {
        let reason = results.iter().find_map(|r| match &r.outcome {
            Outcome::Skip(reason) if r.sandbox == *sandbox => Some(reason),
            _ => None,
        });
        // Per-cell skips (lock-mode-000 as root) in a sandbox that otherwise ran are not
        // the sandbox's: only a sandbox with nothing run is reported as skipped.
        let ran = results
            .iter()
            .any(|r| r.sandbox == *sandbox && !matches!(r.outcome, Outcome::Skip(_)));
        if let (Some(reason), false) = (reason, ran) {
            if first {
                out.push_str("\nskipped:\n");
                first = false;
            }
            let _ = writeln!(out, "{}", wrap(&format!("  {sandbox}: {reason}"), "      "));
        }
    }
    out.push('\n');
}

/// The command that reruns exactly this cell.
fn rerun(build: &Build, name: &str, r: &CellResult) -> String {
    match build {
        // The test suite knows these builds: one cell is one test.
        Build::Patched | Build::Pristine => {
            format!("cargo nextest run --workspace -E 'test(={name})'")
        }
        Build::Official(_) => {
            format!("UVFIX_UV=<its uv> cargo nextest run --workspace -E 'test(={name})'")
        }
        Build::Revision(_) => format!(
            "cargo xtask upstream validate <uv git dir> <rev> --sandbox {} --scenario {} --state {}",
            r.sandbox, r.scenario, r.state
        ),
        Build::Step { .. } | Build::Upstream => format!(
            "cargo xtask matrix --uv {build}=<its uv> --sandbox {} --scenario {} --state {}",
            r.sandbox, r.scenario, r.state
        ),
    }
}

/// `text` in lines of at most [`WIDTH`] columns, broken at spaces only (a path or a command
/// word stays whole, to be copied; only a single word wider than the terminal sticks out), every
/// line after the first indented by `indent`, the text's own line breaks included.
fn wrap(text: &str, indent: &str) -> String {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let options = textwrap::Options::new(WIDTH)
            .initial_indent(if i == 0 { "" } else { indent })
            .subsequent_indent(indent)
            .word_splitter(textwrap::WordSplitter::NoHyphenation)
            .break_words(false);
        lines.extend(
            textwrap::wrap(line, options)
                .into_iter()
                .map(|l| l.into_owned()),
        );
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn counts_failures_and_skips_fit_the_terminal() {
        let results = sample();
        let s = render_summary(&results);
        insta::assert_snapshot!(s);
        assert!(
            s.lines()
                .all(|l| l.chars().count() <= WIDTH || l.starts_with("  rerun:")),
            "{s}"
        );
        // Every FAIL, right below its reason, has the command that reruns exactly that cell.
        let fails: Vec<&CellResult> = results.iter().filter(|r| r.outcome.is_fail()).collect();
        assert!(!fails.is_empty(), "the sample should hold a FAIL");
        for r in fails {
            let name = format!("{}/{}/{}/{}", r.uv_label, r.sandbox, r.scenario, r.state);
            let rerun = format!("  rerun: cargo nextest run --workspace -E 'test(={name})'");
            let lines: Vec<&str> = s.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.starts_with(&format!("FAIL {name}: ")))
                .unwrap_or_else(|| panic!("no FAIL line for {name}:\n{s}"));
            let next = lines[at + 1..]
                .iter()
                .find(|l| !l.starts_with("    "))
                .copied();
            assert_eq!(next, Some(rerun.as_str()), "{s}");
        }
    }

    /// A skip reason ends with the command that installs what is missing, and a failure's
    /// reason may be long too: both are wrapped within the width, whole.
    #[test]
    fn long_reasons_are_wrapped_not_cut() {
        use super::super::tests::cell;
        use crate::scenario::ScenarioId;
        use crate::state::CacheState;
        let install = "npm install --prefix target/uvfix/npm @openai/codex@0.63.0";
        let skip = format!(
            "sandbox `codex` unavailable here: codex not found in $UVFIX_CODEX, PATH or \
             /work/a-long-checkout-directory/crates/sandbox/../../target/uvfix/npm/node_modules/.bin/codex: \
             {install}"
        );
        let fail = "canary: sandbox `leaky` did not deny a write into the cache: the helper wrote \
                    /tmp/uvr-XXXXXX/slot/home/.cache/uv/uvfix-canary and exited 0\n\
                    second line of the reason";
        let results = vec![
            cell(
                "patched",
                "codex",
                ScenarioId::S1,
                CacheState::Warm,
                Outcome::Skip(skip.clone()),
            ),
            cell(
                "patched",
                "none",
                ScenarioId::S1,
                CacheState::Warm,
                Outcome::Fail(fail.into()),
            ),
        ];
        let s = render_summary(&results);
        for line in s.lines().filter(|l| !l.starts_with("  rerun:")) {
            assert!(
                line.chars().count() <= WIDTH,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        // Nothing lost: the words of both reasons are all there, in order.
        let words = |t: &str| t.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert!(
            words(&s)
                .windows(words(&skip).len())
                .any(|w| w == words(&skip)),
            "{s}"
        );
        assert!(s.contains("@openai/codex@0.63.0"), "{s}");
        insta::assert_snapshot!(s);
    }
}
