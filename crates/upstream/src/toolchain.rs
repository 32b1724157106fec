//! Which Rust builds an astral-sh/uv revision, and why that one.
//!
//! uv pins an exact release in `rust-toolchain.toml` (its CI installs it) and declares the
//! oldest it supports as `rust-version`. The pinned one is what upstream's green means, its
//! clippy lints above all, so it is used when it is installed or rustup can install it. Else the
//! toolchain running this command, or the installed one nearest to the pinned release, as long
//! as it meets `rust-version`; else a clear error. The choice is always said in words
//! ([`Chosen::describe`]), because a build or a lint with another toolchain is a different
//! finding.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::command::output;

/// A rustup toolchain (or the `rustc` on `PATH` when rustup does not manage Rust here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Toolchain {
    /// rustup toolchain name, when rustup manages Rust here.
    pub name: Option<String>,
    /// `1.95.0`, `1.97.0-nightly`.
    pub version: String,
}

/// What a checkout asks for: `rust-toolchain.toml`'s channel and the workspace's
/// `rust-version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub pinned: Option<String>,
    pub rust_version: Option<String>,
}

impl Wanted {
    /// Read from a checkout's files.
    pub(crate) fn of_tree(tree: &Path) -> Result<Self> {
        let manifest = fs_err::read_to_string(tree.join("Cargo.toml"))?;
        let toolchain = fs_err::read_to_string(tree.join("rust-toolchain.toml")).ok();
        Self::parse(&manifest, toolchain.as_deref())
    }

    /// From the text of `Cargo.toml` and `rust-toolchain.toml` (so a revision can be judged
    /// from `git show` before any worktree exists).
    pub(crate) fn parse(manifest: &str, toolchain_toml: Option<&str>) -> Result<Self> {
        let value: toml::Value = toml::from_str(manifest).context("reading uv's Cargo.toml")?;
        Ok(Self {
            pinned: toolchain_toml.and_then(pinned_channel),
            rust_version: rust_version_of(&value),
        })
    }
}

/// How the toolchain was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `--toolchain`.
    Requested,
    /// `rust-toolchain.toml`'s channel, already installed.
    Pinned,
    /// `rust-toolchain.toml`'s channel, installed by this run through rustup.
    PinnedInstalledNow,
    /// Another one: the pinned channel could not be had (why), or none is pinned.
    Fallback { why: String },
}

/// A toolchain and why it was chosen.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub toolchain: Toolchain,
    pub reason: Reason,
    pub wanted: Wanted,
}

impl Chosen {
    /// `rustc 1.97.1 (rustup toolchain `1.97.1`), the one uv's rust-toolchain.toml pins`.
    pub(crate) fn describe(&self) -> String {
        let pinned = self.wanted.pinned.as_deref().unwrap_or("none");
        let why = match &self.reason {
            Reason::Requested => format!("as requested; its rust-toolchain.toml pins {pinned}"),
            Reason::Pinned => "the one its rust-toolchain.toml pins".to_string(),
            Reason::PinnedInstalledNow => {
                "the one its rust-toolchain.toml pins, installed now with rustup".to_string()
            }
            Reason::Fallback { why } => format!("not the pinned {pinned}: {why}"),
        };
        format!(
            "rustc {} ({}), {why}",
            self.toolchain.version,
            self.toolchain.describe()
        )
    }
}

/// `--toolchain` and `--no-install`, for every command that builds uv.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ToolchainArgs {
    /// The rustup toolchain to build with [default: the one the checkout's
    /// rust-toolchain.toml pins, installed through rustup if missing; else the installed one
    /// nearest to it that meets the workspace's rust-version]. The choice is printed.
    #[arg(long)]
    pub toolchain: Option<String>,
    /// Never let rustup install the pinned toolchain: fall back to an installed one.
    #[arg(long)]
    pub no_install: bool,
}

impl ToolchainArgs {
    pub fn install(&self, components: &'static [&'static str]) -> Install {
        match self.no_install {
            true => Install::Never,
            false => Install::Try { components },
        }
    }
}

/// Whether to let rustup download the pinned channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Try once (`rustup toolchain install`), with the components `components` names.
    Try {
        components: &'static [&'static str],
    },
    Never,
}

impl Toolchain {
    /// The rustup toolchain `name`, if it is installed and runs.
    pub(crate) fn named(name: &str) -> Result<Self> {
        let mut rustc = Command::new("rustc");
        rustc
            .arg("--version")
            .env("RUSTUP_TOOLCHAIN", name)
            // Probing must not download anything: rustup may otherwise install it on use.
            .env("RUSTUP_AUTO_INSTALL", "0");
        let version = output(&mut rustc)
            .with_context(|| format!("toolchain `{name}` is not usable; is it installed?"))?;
        let version = parse_rustc_version(&version)
            .with_context(|| format!("cannot read the version in `{}`", version.trim()))?;
        Ok(Self {
            name: Some(name.to_string()),
            version,
        })
    }

    /// The toolchain running this command in `dir` (found from `rustc`'s sysroot).
    pub(crate) fn running(dir: &Path) -> Result<Self> {
        let sysroot = output(
            Command::new("rustc")
                .current_dir(dir)
                .args(["--print", "sysroot"]),
        )?;
        let sysroot = Path::new(sysroot.trim());
        // rustup keeps toolchains at `$RUSTUP_HOME/toolchains/<name>`.
        let name = sysroot
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "toolchains"))
            .and(sysroot.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        match name {
            Some(name) => Self::named(&name),
            None => {
                let version = output(Command::new("rustc").arg("--version"))?;
                let version = parse_rustc_version(&version)
                    .with_context(|| format!("cannot read the version in `{}`", version.trim()))?;
                Ok(Self {
                    name: None,
                    version,
                })
            }
        }
    }

    /// Every toolchain rustup has installed (none without rustup).
    pub(crate) fn installed() -> Vec<Self> {
        let Ok(list) = output(Command::new("rustup").args(["toolchain", "list"])) else {
            return Vec::new();
        };
        list.lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter_map(|name| Self::named(name).ok())
            .collect()
    }

    pub(crate) fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("rustup toolchain `{name}`"),
            None => "rustc on PATH".to_string(),
        }
    }

    /// `cargo` with this toolchain forced, so the checkout's `rust-toolchain.toml` is not
    /// consulted (and nothing is downloaded behind our back).
    pub(crate) fn cargo(&self) -> Command {
        let mut command = Command::new("cargo");
        if let Some(name) = &self.name {
            command
                .env("RUSTUP_TOOLCHAIN", name)
                .env("RUSTUP_AUTO_INSTALL", "0");
        }
        command
    }

    /// Whether `cargo <subcommand>` (clippy, fmt) runs with this toolchain.
    pub(crate) fn has_subcommand(&self, subcommand: &str) -> bool {
        uvfix_process::run(self.cargo().args([subcommand, "--version"]), None)
            .is_ok_and(|out| out.success())
    }

    /// Add rustup components (clippy, rustfmt) to this toolchain; an error says what failed.
    pub(crate) fn add_components(&self, components: &[&str]) -> Result<()> {
        let Some(name) = &self.name else {
            bail!("Rust is not managed by rustup here: install {components:?} yourself");
        };
        let mut add = Command::new("rustup");
        add.args(["component", "add", "--toolchain", name])
            .args(components);
        let out = uvfix_process::run(&mut add, Some(Duration::from_secs(600)))?;
        if !out.success() {
            bail!(
                "`rustup component add --toolchain {name} {}` failed: {}",
                components.join(" "),
                out.stderr_text().trim()
            );
        }
        Ok(())
    }
}

/// Choose the toolchain for a checkout that wants `wanted` (see the module docs). `dir` is
/// where "the toolchain running this command" is asked for (the fixture root).
pub(crate) fn choose(
    dir: &Path,
    wanted: &Wanted,
    requested: Option<&str>,
    install: Install,
) -> Result<Chosen> {
    let chosen = |toolchain, reason| Chosen {
        toolchain,
        reason,
        wanted: wanted.clone(),
    };
    if let Some(name) = requested {
        let toolchain = Toolchain::named(name).with_context(|| {
            format!("--toolchain {name}: install it first (`rustup toolchain install {name}`)")
        })?;
        refuse_too_old(&toolchain, wanted)?;
        return Ok(chosen(toolchain, Reason::Requested));
    }
    let why = match &wanted.pinned {
        None => "it pins none".to_string(),
        Some(pinned) => match Toolchain::named(pinned) {
            Ok(toolchain) => return Ok(chosen(toolchain, Reason::Pinned)),
            Err(_) => match install {
                Install::Never => format!("{pinned} is not installed (installing was not allowed)"),
                Install::Try { components } => match install_channel(pinned, components) {
                    Ok(toolchain) => return Ok(chosen(toolchain, Reason::PinnedInstalledNow)),
                    Err(err) => format!(
                        "{pinned} is not installed and rustup could not install it ({err:#})"
                    ),
                },
            },
        },
    };
    let running = Toolchain::running(dir).ok();
    let installed = Toolchain::installed();
    let candidates: Vec<Toolchain> = running.iter().cloned().chain(installed).collect();
    match nearest(&candidates, wanted) {
        Some(toolchain) => Ok(chosen(
            toolchain.clone(),
            Reason::Fallback {
                why: format!("{why}; the nearest installed one that meets its rust-version"),
            },
        )),
        None => bail!(
            "no Rust toolchain here can build it: {why}, and none installed meets its \
             rust-version {} (installed: {}). Install one (`rustup toolchain install {}`) or \
             pass --toolchain NAME.",
            wanted.rust_version.as_deref().unwrap_or("(none declared)"),
            match candidates.is_empty() {
                true => "none".to_string(),
                false => candidates
                    .iter()
                    .map(|t| format!("{} = rustc {}", t.describe(), t.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            wanted
                .pinned
                .as_deref()
                .or(wanted.rust_version.as_deref())
                .unwrap_or("stable"),
        ),
    }
}

/// `rustup toolchain install CHANNEL --profile minimal`, once, with a time limit.
fn install_channel(channel: &str, components: &[&str]) -> Result<Toolchain> {
    let mut rustup = Command::new("rustup");
    rustup.args([
        "toolchain",
        "install",
        channel,
        "--profile",
        "minimal",
        "--no-self-update",
    ]);
    if !components.is_empty() {
        rustup.arg("--component").arg(components.join(","));
    }
    let out = uvfix_process::run(&mut rustup, Some(Duration::from_secs(900)))
        .context("running rustup")?;
    if !out.success() {
        let text = out.stderr_text();
        bail!(
            "{}",
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed")
        );
    }
    Toolchain::named(channel)
}

/// Refuse a toolchain older than the checkout's `rust-version`, before any build.
pub(crate) fn refuse_too_old(toolchain: &Toolchain, wanted: &Wanted) -> Result<()> {
    if let Some(required) = &wanted.rust_version
        && too_old(&toolchain.version, required)
    {
        bail!(
            "it needs rustc {required} or newer (`rust-version` in its Cargo.toml), but {} is \
             rustc {}. Install a newer Rust (`rustup toolchain install {}`) and pass \
             `--toolchain {}`.",
            toolchain.describe(),
            toolchain.version,
            wanted.pinned.as_deref().unwrap_or(required),
            wanted.pinned.as_deref().unwrap_or(required),
        );
    }
    Ok(())
}

/// Among `candidates` that meet `rust-version`, the one nearest to the pinned release (a
/// stable one before a nightly of the same distance); without a pin, the first that meets it.
fn nearest<'a>(candidates: &'a [Toolchain], wanted: &Wanted) -> Option<&'a Toolchain> {
    let usable = candidates.iter().filter(|t| {
        wanted
            .rust_version
            .as_deref()
            .is_none_or(|need| !too_old(&t.version, need))
    });
    let Some(pinned) = wanted.pinned.as_deref().and_then(release_of) else {
        return usable.into_iter().next();
    };
    usable.min_by_key(|t| {
        let version = release_of(&t.version).unwrap_or_default();
        let distance = (version.0.abs_diff(pinned.0), version.1.abs_diff(pinned.1));
        (distance, t.version.contains('-'))
    })
}

/// `1.93` / `1.93.1` / `1.97.0-nightly` → (minor, patch) of 1.x; `stable` and friends → None.
fn release_of(version: &str) -> Option<(u64, u64)> {
    let core = version.split('-').next()?;
    let mut parts = core.split('.');
    if parts.next()? != "1" {
        return None;
    }
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    Some((minor, patch))
}

/// `rustc 1.95.0 (59807616e 2026-04-14)` → `1.95.0`.
pub(crate) fn parse_rustc_version(text: &str) -> Option<String> {
    let version = text.split_whitespace().nth(1)?;
    semver::Version::parse(version).ok()?;
    Some(version.to_string())
}

/// Whether rustc `have` (`1.97.0-nightly`) is older than a `rust-version` (`1.96`, `1.96.0`).
/// A nightly counts as its release: cargo accepts it for that `rust-version`, semver would
/// order it before. Unreadable versions are not "too old": the build will say what is wrong.
pub(crate) fn too_old(have: &str, need: &str) -> bool {
    let Ok(mut have) = semver::Version::parse(have) else {
        return false;
    };
    have.pre = semver::Prerelease::EMPTY;
    semver::VersionReq::parse(&format!(">={need}")).is_ok_and(|req| !req.matches(&have))
}

fn rust_version_of(value: &toml::Value) -> Option<String> {
    ["workspace", "package"]
        .iter()
        .find_map(|table| {
            let package = match *table {
                "workspace" => value.get("workspace")?.get("package")?,
                _ => value.get("package")?,
            };
            package.get("rust-version")?.as_str()
        })
        .map(str::to_string)
}

/// The channel in a `rust-toolchain.toml`.
fn pinned_channel(text: &str) -> Option<String> {
    let value: toml::Value = toml::from_str(text).ok()?;
    Some(
        value
            .get("toolchain")?
            .get("channel")?
            .as_str()?
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("rustc 1.95.0 (59807616e 2026-04-14)", Some("1.95.0"); "stable")]
    #[test_case("rustc 1.97.0-nightly (abc 2026-05-01)\n", Some("1.97.0-nightly"); "nightly")]
    #[test_case("error: no such toolchain", None; "garbage")]
    fn reads_rustc_version(text: &str, expected: Option<&str>) {
        assert_eq!(parse_rustc_version(text).as_deref(), expected);
    }

    #[test_case("1.95.0", "1.96.0", true; "older minor")]
    #[test_case("1.95.0", "1.95", false; "two part requirement met")]
    #[test_case("1.95.0", "1.95.1", true; "older patch")]
    #[test_case("1.97.0-nightly", "1.96.0", false; "newer nightly")]
    #[test_case("1.100.0", "1.99.0", false; "numeric not lexical")]
    fn detects_too_old(have: &str, need: &str, expected: bool) {
        assert_eq!(too_old(have, need), expected);
    }

    #[test_case("[workspace.package]\nrust-version = \"1.96.0\"\n", Some("1.96.0"); "workspace")]
    #[test_case("[package]\nname = \"x\"\nrust-version = \"1.90\"\n", Some("1.90"); "package")]
    #[test_case("[workspace]\nmembers = []\n", None; "none")]
    fn finds_rust_version(manifest: &str, expected: Option<&str>) {
        let wanted = Wanted::parse(manifest, None).unwrap();
        assert_eq!(wanted.rust_version.as_deref(), expected);
    }

    #[test]
    fn reads_the_pinned_channel() {
        let wanted = Wanted::parse("", Some("[toolchain]\nchannel = \"1.97.1\"\n")).unwrap();
        assert_eq!(wanted.pinned.as_deref(), Some("1.97.1"));
        assert_eq!(Wanted::parse("", Some("not toml [")).unwrap().pinned, None);
    }

    fn tc(name: &str, version: &str) -> Toolchain {
        Toolchain {
            name: Some(name.into()),
            version: version.into(),
        }
    }

    #[test]
    fn the_nearest_installed_one_meets_rust_version() {
        let installed = [
            tc("stable", "1.95.0"),
            tc("nightly", "1.97.0-nightly"),
            tc("1.90.0", "1.90.0"),
        ];
        let wanted = |pinned: &str, need: &str| Wanted {
            pinned: Some(pinned.into()),
            rust_version: Some(need.into()),
        };
        // uv 0.10: pins 1.93, needs 1.91: 1.90 is nearer but too old.
        assert_eq!(
            nearest(&installed, &wanted("1.93", "1.91"))
                .unwrap()
                .version,
            "1.95.0"
        );
        // uv 0.12.5: pins 1.97.1: the nightly of 1.97 is nearest.
        assert_eq!(
            nearest(&installed, &wanted("1.97.1", "1.95.0"))
                .unwrap()
                .version,
            "1.97.0-nightly"
        );
        assert!(nearest(&installed, &wanted("1.99.0", "1.98")).is_none());
        // A stable before a nightly at the same distance.
        let tied = [tc("nightly", "1.96.0-nightly"), tc("1.96.0", "1.96.0")];
        assert_eq!(
            nearest(&tied, &wanted("1.96.0", "1.90")).unwrap().version,
            "1.96.0"
        );
    }

    #[test]
    fn a_missing_toolchain_is_named_with_what_to_do() {
        let err = choose(
            Path::new("."),
            &Wanted::default(),
            Some("uvfix-no-such-toolchain"),
            Install::Never,
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("--toolchain uvfix-no-such-toolchain")
                && text.contains("rustup toolchain install uvfix-no-such-toolchain"),
            "{text}"
        );
    }
}
