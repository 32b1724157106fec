//! Which uv a cell runs, as a type: what the build *is* decides its expectations, its name
//! only shows it.
//!
//! The names are those of test names, table headers, JSON (`uv_label`) and JUnit suites:
//! `pristine`, `step-2-of-4`, `patched`, `official-0.12.5`, `upstream`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A uv under test.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize
)]
#[serde(into = "String", try_from = "String")]
pub enum Build {
    /// The release built from the verified crates without the series (the control).
    Pristine,
    /// The release with the first `applied` patches of a stack of `of` (1-based).
    Step { applied: usize, of: usize },
    /// The release with the whole series.
    Patched,
    /// An official release binary (a PyPI wheel).
    Official(semver::Version),
    /// An astral-sh/uv checkout with the exported series applied (`cargo xtask upstream check`).
    Upstream,
    /// An astral-sh/uv revision built as it is (`cargo xtask upstream validate`), by its
    /// abbreviated commit id. It is judged by comparison with another revision, not by the
    /// table; its cells get an unfixed build's expectations, as a release's do, so a cell it
    /// fixes shows up as an unexpected pass.
    Revision(String),
}

/// Which rows of the expectation table apply to a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UvSel {
    /// Every build.
    Any,
    /// The read-only cache fix is in: the build must pass where the series makes it pass.
    Fixed,
    /// The fix is not (or not entirely) in: expected to fail where the series is needed.
    Unfixed,
}

impl Build {
    /// Whether this build carries the fix. A partial stack counts as unfixed until the
    /// per-step expectations exist; a stack prefix that is the whole stack is the fix.
    pub fn uv_sel(&self) -> UvSel {
        match self {
            Build::Patched | Build::Upstream => UvSel::Fixed,
            Build::Step { applied, of } if applied == of => UvSel::Fixed,
            Build::Step { .. } | Build::Pristine | Build::Official(_) | Build::Revision(_) => {
                UvSel::Unfixed
            }
        }
    }
}

impl fmt::Display for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Build::Pristine => f.write_str("pristine"),
            Build::Step { applied, of } => write!(f, "step-{applied}-of-{of}"),
            Build::Patched => f.write_str("patched"),
            Build::Official(version) => write!(f, "official-{version}"),
            Build::Upstream => f.write_str("upstream"),
            Build::Revision(sha) => write!(f, "rev-{sha}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown build `{0}`: expected pristine, patched, upstream, official-<version>, step-<n>-of-<m> or rev-<commit>"
)]
pub struct UnknownBuild(String);

impl FromStr for Build {
    type Err = UnknownBuild;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownBuild(name.to_owned());
        match name {
            "pristine" => Ok(Build::Pristine),
            "patched" => Ok(Build::Patched),
            "upstream" => Ok(Build::Upstream),
            _ => {
                if let Some(version) = name.strip_prefix("official-") {
                    return version.parse().map(Build::Official).map_err(|_| unknown());
                }
                if let Some(sha) = name.strip_prefix("rev-") {
                    return match (7..=40).contains(&sha.len())
                        && sha
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    {
                        true => Ok(Build::Revision(sha.to_owned())),
                        false => Err(unknown()),
                    };
                }
                let (applied, of) = name
                    .strip_prefix("step-")
                    .and_then(|rest| rest.split_once("-of-"))
                    .ok_or_else(unknown)?;
                match (applied.parse(), of.parse()) {
                    (Ok(applied), Ok(of)) if (1..=of).contains(&applied) => {
                        Ok(Build::Step { applied, of })
                    }
                    _ => Err(unknown()),
                }
            }
        }
    }
}

impl From<Build> for String {
    fn from(build: Build) -> String {
        build.to_string()
    }
}

impl TryFrom<String> for Build {
    type Error = UnknownBuild;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("pristine", UvSel::Unfixed)]
    #[test_case("patched", UvSel::Fixed)]
    #[test_case("upstream", UvSel::Fixed)]
    #[test_case("official-0.12.5", UvSel::Unfixed)]
    #[test_case("step-2-of-4", UvSel::Unfixed)]
    #[test_case("step-4-of-4", UvSel::Fixed)]
    #[test_case("rev-0dbeb4cd3d12", UvSel::Unfixed)]
    fn names_round_trip_and_select(name: &str, sel: UvSel) {
        let build: Build = name.parse().unwrap();
        assert_eq!(build.to_string(), name);
        assert_eq!(build.uv_sel(), sel);
    }

    #[test_case("official-x"; "bad version")]
    #[test_case("step-0-of-4"; "zero")]
    #[test_case("step-5-of-4"; "beyond the stack")]
    #[test_case("nightly"; "unknown")]
    #[test_case("rev-0DBEB4CD"; "upper case commit")]
    #[test_case("rev-abc"; "short commit")]
    fn rejects(name: &str) {
        assert!(name.parse::<Build>().is_err());
    }

    #[test]
    fn serializes_as_its_name() {
        let json = serde_json::to_string(&Build::Official("0.13.9".parse().unwrap())).unwrap();
        assert_eq!(json, "\"official-0.13.9\"");
        assert_eq!(
            serde_json::from_str::<Build>("\"patched\"").unwrap(),
            Build::Patched
        );
    }
}
