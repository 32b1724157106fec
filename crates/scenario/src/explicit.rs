//! What the user named on a `cargo xtask matrix` command line, and the checks that hold an
//! explicit request to having tested something. Its own module because both the matrix
//! (`cargo xtask matrix`) and its per-step mode ([`crate::stepwise`]) judge a run by it.

use anyhow::{Result, bail};

use crate::Outcome;
use crate::cell::CellResult;
use crate::plan::Filter;

/// What the user named on the command line. A run they asked for by name that tests nothing
/// is an error (like nextest's `--no-tests=fail`): a script or CI job naming a sandbox that is
/// missing must not go green. The implicit default run, every sandbox, most of them skipped on
/// a bare machine, is not.
pub struct Explicit(Vec<&'static str>);

impl Explicit {
    /// From each flag and whether it was given.
    pub fn of(named: impl IntoIterator<Item = (&'static str, bool)>) -> Self {
        Self(
            named
                .into_iter()
                .filter_map(|(flag, given)| given.then_some(flag))
                .collect(),
        )
    }

    fn asked(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join(", "))
    }

    /// Before anything is built: every sandbox named is unavailable here.
    pub fn check_sandboxes(&self, filter: &Filter) -> Result<()> {
        let (Some(asked), Some(sandboxes)) = (self.asked(), &filter.sandboxes) else {
            return Ok(());
        };
        let reasons: Vec<String> = sandboxes
            .iter()
            .map(|s| s.skip_reason())
            .collect::<Option<_>>()
            .unwrap_or_default();
        if reasons.is_empty() || reasons.len() < sandboxes.len() {
            return Ok(());
        }
        bail!(
            "nothing to test: every sandbox asked for ({asked}) is unavailable here:\n  {}",
            reasons.join("\n  ")
        )
    }

    /// After the run: no cell of an explicit request ran.
    pub fn check_ran(&self, results: &[CellResult]) -> Result<()> {
        self.check_outcomes(results.iter().map(|r| &r.outcome))
    }

    fn check_outcomes<'a>(&self, outcomes: impl IntoIterator<Item = &'a Outcome>) -> Result<()> {
        let Some(asked) = self.asked() else {
            return Ok(());
        };
        let mut reasons: Vec<&str> = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Skip(why) => {
                    if !reasons.contains(&why.as_str()) {
                        reasons.push(why);
                    }
                }
                _ => return Ok(()),
            }
        }
        if reasons.is_empty() {
            bail!("nothing to test: the cells asked for ({asked}) are none");
        }
        bail!(
            "nothing was tested: every cell asked for ({asked}) was skipped:\n  {}",
            reasons.join("\n  ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_request_that_ran_nothing_fails_with_its_reasons() {
        let skipped = [
            Outcome::Skip("sandbox `x` unavailable here: no x".into()),
            Outcome::Skip("sandbox `x` unavailable here: no x".into()),
        ];
        let named = Explicit(vec!["--sandbox"]);
        let err = named.check_outcomes(&skipped).unwrap_err().to_string();
        assert!(err.contains("nothing was tested"), "{err}");
        assert!(err.contains("(--sandbox)"), "{err}");
        assert_eq!(err.matches("no x").count(), 1, "reasons once each: {err}");
        let err = named.check_outcomes(&[]).unwrap_err().to_string();
        assert!(err.contains("are none"), "{err}");
        // One cell that ran is enough; the default run is never held to it.
        let ran = [skipped[0].clone(), Outcome::ExpectedFail];
        assert!(named.check_outcomes(&ran).is_ok());
        assert!(Explicit(Vec::new()).check_outcomes(&skipped).is_ok());
    }
}
