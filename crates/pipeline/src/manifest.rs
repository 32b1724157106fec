//! `patches/series.toml`: the pinned uv release, the crates the stack touches, and the
//! stack itself: ordered steps, each one upstream pull request.
//!
//! The manifest is resolved and validated once, in [`Manifest::load`]: every later user
//! sees steps whose patch files exist and whose ids are unique.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The parsed and validated series manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The `uv` crate release the stack is written against.
    pub uv: Release,
    /// Every crate the stack touches, pinned at the version the release's `Cargo.lock` names.
    pub crates: Vec<PinnedCrate>,
    /// The stack, bottom first: step `n` applies on top of steps `1..n`.
    pub steps: Vec<Step>,
    /// Where the manifest was read from (`patches/`, or `patches/<base>/`).
    pub dir: PathBuf,
    /// For a base whose stack `upstream forward` writes: where it comes from, and what moved.
    pub forward: Option<Forward>,
}

/// `[forward]` of a base's `series.toml`: its stack is the stack of base `from`, carried over
/// by `cargo xtask upstream forward write --base <this>`. Files the release moved are renamed with
/// `[[forward.move]]`; the hunks a maintainer redid by hand are `fixups/<patch file name>`,
/// applied on top of what carried over, so a rerun picks up later changes of the source stack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The uv version of the base the stack comes from (the default base: `patches/`).
    pub from: String,
    #[serde(rename = "move", default)]
    pub moves: Vec<Move>,
}

/// A file (or, ending with `/`, a directory) the release moved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Move {
    pub from: String,
    pub to: String,
}

impl Move {
    /// `path` after the move, if this move covers it.
    pub fn apply(&self, path: &str) -> Option<String> {
        if self.from.ends_with('/') {
            path.strip_prefix(&self.from)
                .map(|rest| format!("{}{rest}", self.to))
        } else {
            (path == self.from).then(|| self.to.clone())
        }
    }
}

/// `series.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    uv: Release,
    #[serde(rename = "crate", default)]
    crates: Vec<PinnedCrate>,
    #[serde(rename = "step", default)]
    steps: Vec<RawStep>,
    forward: Option<Forward>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    /// sha256 of `uv-<version>.crate`, as the crates.io index records it.
    pub checksum: String,
    /// The rustup toolchain that builds this release (`nightly` while its `rust-version` is
    /// newer than stable here); none means the toolchain running `cargo xtask`.
    #[serde(default)]
    pub toolchain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedCrate {
    pub name: String,
    pub version: String,
}

/// Whether we expect upstream to take a step as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A fix we propose as it stands.
    Proposed,
    /// A design decision a maintainer may well refuse; the steps below it do not need it.
    Optional,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    patch: PathBuf,
    status: Status,
    claim: String,
}

/// One step of the stack: one upstream pull request.
#[derive(Debug, Clone)]
pub struct Step {
    /// Short, stable name (`markers`), used in build names, expectations and reports.
    pub id: String,
    /// 1-based position in the stack.
    pub number: usize,
    /// Path as written in the manifest (`stack/0001-….patch`).
    pub rel: PathBuf,
    /// Absolute path of the patch file.
    pub path: PathBuf,
    pub status: Status,
    /// What the step makes true, in one line.
    pub claim: String,
}

impl Manifest {
    pub const FILE: &'static str = "series.toml";

    /// Read, resolve and validate `dir/series.toml`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        Self::read(dir, true)
    }

    /// As [`Manifest::load`], but a step's patch file may be missing: `upstream forward`
    /// is about to write it.
    pub fn load_to_forward(dir: &Path) -> Result<Self, Error> {
        Self::read(dir, false)
    }

    fn read(dir: &Path, require_patches: bool) -> Result<Self, Error> {
        let path = dir.join(Self::FILE);
        let text = fs_err::read_to_string(&path)?;
        let bad = |message: String| Error::Manifest {
            path: path.clone(),
            message,
        };
        let raw: RawManifest = toml::from_str(&text).map_err(|err| bad(err.to_string()))?;

        let mut names: Vec<_> = raw.crates.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("crate `{}` is pinned twice", dup[0])));
        }

        let mut steps: Vec<Step> = Vec::with_capacity(raw.steps.len());
        for (index, step) in raw.steps.into_iter().enumerate() {
            if !step.id.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                return Err(bad(format!(
                    "step id `{}` must be lowercase letters and dashes",
                    step.id
                )));
            }
            if steps.iter().any(|s| s.id == step.id) {
                return Err(bad(format!("step id `{}` is used twice", step.id)));
            }
            let abs = dir.join(&step.patch);
            if require_patches && !abs.is_file() {
                let todo = match &raw.forward {
                    Some(_) => {
                        "; write this base's stack with `cargo xtask upstream forward write --base <version>`"
                    }
                    None => "",
                };
                return Err(bad(format!(
                    "step `{}` names `{}`, but {} does not exist{todo}",
                    step.id,
                    step.patch.display(),
                    abs.display()
                )));
            }
            steps.push(Step {
                id: step.id,
                number: index + 1,
                rel: step.patch,
                path: abs,
                status: step.status,
                claim: step.claim,
            });
        }
        Ok(Self {
            uv: raw.uv,
            crates: raw.crates,
            steps,
            dir: dir.to_path_buf(),
            forward: raw.forward,
        })
    }

    /// The first `n` steps of the stack.
    pub fn prefix(&self, n: usize) -> &[Step] {
        &self.steps[..n.min(self.steps.len())]
    }

    /// The step with this id, or its 1-based number.
    pub fn step(&self, id_or_number: &str) -> Option<&Step> {
        self.steps.iter().find(|s| {
            s.id == id_or_number || id_or_number.parse::<usize>().is_ok_and(|n| n == s.number)
        })
    }

    /// Where the hand-made part of `step`'s rebase lives (`fixups/<patch file name>`).
    pub fn fixup(&self, step: &Step) -> PathBuf {
        self.dir
            .join("fixups")
            .join(step.rel.file_name().unwrap_or(step.rel.as_os_str()))
    }

    /// Whether `name` is a crate the stack may patch.
    pub fn pins(&self, name: &str) -> bool {
        self.crates.iter().any(|c| c.name == name)
    }
}
