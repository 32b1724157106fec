//! The build side of the fixture: patches → vendor → build.
//!
//! * [`manifest`] reads `patches/series.toml` (the pinned release and the ordered series).
//! * [`fetch`] asks cargo for the pinned `.crate` files and the `Cargo.lock` shipped in the
//!   uv crate, whose checksums every extracted crate is verified against.
//! * [`vendor`] extracts pristine crates and applies the series into generated workspaces
//!   under `target/uvfix/build/{pristine,patched}`, refusing half-patched trees.
//! * [`builder`] builds `uv`/`uvx` in those workspaces with one shared target dir.
//! * [`refresh`] regenerates a crate's patch file from a maintainer's edit.
//! * [`fmt_check`] checks that every step leaves the Rust it touches as rustfmt would.
//!
//! Nothing here is upstream code: the uv sources only ever exist under `target/`.

use std::path::{Path, PathBuf};

pub mod builder;
pub mod fetch;
pub mod fmt_check;
pub mod manifest;
pub mod patchfile;
pub mod refresh;
pub mod vendor;

pub use builder::{Variant, uv_path};
pub use manifest::Manifest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "checksum mismatch for {file}: expected sha256 {expected} (from {origin}), found {actual}. \
         The download is corrupt or the pin is wrong; delete the file and run again, or fix the pin"
    )]
    ChecksumMismatch {
        file: PathBuf,
        expected: String,
        actual: String,
        origin: String,
    },
    #[error("{patch}: cannot parse: {message}")]
    PatchParse { patch: PathBuf, message: String },
    #[error(
        "{patch}: hunk #{number} ({hunk}) does not apply to {file}. Nothing was built from the \
         half-patched tree; rebase the patch (edit the extracted crate and run \
         `cargo xtask patch refresh`)"
    )]
    HunkFailed {
        patch: PathBuf,
        file: PathBuf,
        number: usize,
        hunk: String,
    },
    #[error("{patch}: patches {file}, which does not exist in the crate (or is not UTF-8 text)")]
    PatchMissingFile { patch: PathBuf, file: PathBuf },
    #[error("{patch}: creates {file}, which already exists")]
    PatchCreatesExisting { patch: PathBuf, file: PathBuf },
    #[error(
        "{dir} has local edits that are not in patches/ and would be lost. {record}Discard them \
         with `cargo xtask vendor --force`",
        dir = dir.display(),
        record = match step {
            Some(step) => format!(
                "Record them in the step this tree ends with: `cargo xtask patch refresh {step}` \
                 (for a forwarded base, `cargo xtask upstream forward record --base … {step}`). "
            ),
            None => "Record them with `cargo xtask patch refresh <step>` for the step they \
                     belong to. "
                .to_string(),
        }
    )]
    LocalEdits {
        dir: PathBuf,
        /// The step whose patch the edits belong in: the last one this tree applies.
        step: Option<String>,
    },
    #[error("`{tool}` is needed but could not be run ({source}). {hint}")]
    MissingTool {
        tool: String,
        hint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}){detail}")]
    Command {
        command: String,
        status: String,
        detail: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Where everything lives, relative to the fixture's workspace root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    /// The base (a uv release and its stack) builds are for: `None` is the default base,
    /// `patches/series.toml`; another is `patches/<version>/series.toml`.
    pub base: Option<String>,
}

/// The variable that selects a base for processes that discover their paths (the tests).
pub const BASE_ENV: &str = "UVFIX_BASE";

impl Paths {
    /// The fixture workspace root: `$UVFIX_ROOT`, else the nearest ancestor of the current
    /// directory holding `patches/series.toml`.
    pub fn discover() -> Result<Self, Error> {
        let paths = if let Some(root) = std::env::var_os("UVFIX_ROOT") {
            Self::new(root)
        } else {
            let cwd = std::env::current_dir()?;
            cwd.ancestors()
                .find(|dir| dir.join("patches").join(Manifest::FILE).is_file())
                .map(Self::new)
                .ok_or_else(|| {
                    Error::Other(format!(
                        "no patches/{} above {}; run from the fixture checkout or set UVFIX_ROOT",
                        Manifest::FILE,
                        cwd.display()
                    ))
                })?
        };
        match std::env::var(BASE_ENV) {
            Ok(base) if !base.is_empty() => paths.with_base(Some(&base)),
            _ => Ok(paths),
        }
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            base: None,
        }
    }

    /// The same checkout, for base `base` (a uv version). The default base's own version
    /// means the default base; any other needs `patches/<base>/series.toml`.
    pub fn with_base(&self, base: Option<&str>) -> Result<Self, Error> {
        let default = Self::new(&self.root);
        let Some(base) = base else {
            return Ok(default);
        };
        if Manifest::load(&default.patches())?.uv.version == base {
            return Ok(default);
        }
        let series = default.patches().join(base).join(Manifest::FILE);
        if !series.is_file() {
            return Err(Error::Other(format!(
                "no base `{base}`: {} does not exist. Bases here: {}. To add one, see docs/bases.md \
                 (\"Adding a base\")",
                series.display(),
                default.bases()?.join(", ")
            )));
        }
        Ok(Self {
            root: self.root.clone(),
            base: Some(base.to_string()),
        })
    }

    /// Every base's uv version, the default first: the default's pin, then each
    /// `patches/<version>/series.toml`, oldest first.
    pub fn bases(&self) -> Result<Vec<String>, Error> {
        let root = self.root.join("patches");
        let mut others: Vec<cargo_metadata::semver::Version> = Vec::new();
        for entry in fs_err::read_dir(&root)? {
            let entry = entry?;
            if entry.path().join(Manifest::FILE).is_file()
                && let Ok(version) =
                    cargo_metadata::semver::Version::parse(&entry.file_name().to_string_lossy())
            {
                others.push(version);
            }
        }
        others.sort();
        let default = Manifest::load(&root)?.uv.version;
        Ok(std::iter::once(default)
            .chain(others.iter().map(ToString::to_string))
            .collect())
    }

    /// `patches/`, or `patches/<base>/` for another base.
    pub fn patches(&self) -> PathBuf {
        match &self.base {
            None => self.root.join("patches"),
            Some(base) => self.root.join("patches").join(base),
        }
    }

    /// Where this base's builds live: `target/uvfix/` for the default base (as before bases
    /// existed), `target/uvfix/bases/<base>/` for another. Each base has its own target dir:
    /// another base usually needs another toolchain, which shares no artifacts anyway, and a
    /// second cargo lock lets the two build side by side.
    pub fn base_work(&self) -> PathBuf {
        match &self.base {
            None => self.work(),
            Some(base) => self.work().join("bases").join(base),
        }
    }
    /// Everything generated lives below here.
    pub fn work(&self) -> PathBuf {
        std::env::var_os("UVFIX_WORK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("target").join("uvfix"))
    }
    /// The one cargo target dir the builds of a base share, so third-party crates compile once.
    pub fn cargo_target(&self) -> PathBuf {
        self.base_work().join("cargo-target")
    }
    /// The throwaway workspace used only to make cargo download the pinned crates.
    pub fn fetch_dir(&self) -> PathBuf {
        self.base_work().join("fetch")
    }
    pub fn build_dir(&self, variant: Variant) -> PathBuf {
        self.base_work().join("build").join(variant.name())
    }
    /// The vendored crates of `variant`. The directory name differs per variant on purpose:
    /// cargo hashes a path package by its path relative to the workspace root, and two
    /// variants at the same relative path would share (and overwrite) artifacts in the
    /// shared target dir.
    pub fn crates_dir(&self, variant: Variant) -> PathBuf {
        self.build_dir(variant)
            .join(format!("crates-{}", variant.name()))
    }
    pub fn bin_dir(&self, variant: Variant) -> PathBuf {
        self.base_work().join("bin").join(variant.name())
    }
    pub fn lock_file(&self) -> PathBuf {
        self.base_work().join(".lock")
    }
}

/// Hold the fixture-wide lock while vendoring or building, so parallel test processes and
/// `cargo xtask` invocations never see a half-written tree or binary.
pub fn lock(paths: &Paths) -> Result<fs_err::File, Error> {
    fs_err::create_dir_all(paths.base_work())?;
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.lock_file())?;
    match file.file().try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // A silent wait looks like a hang: say who is waiting for what.
            eprintln!(
                "uvfix: waiting for another `cargo xtask` run or test process to finish \
                 vendoring or building ({} is locked)",
                paths.lock_file().display()
            );
            file.file().lock()?;
        }
        Err(std::fs::TryLockError::Error(err)) => return Err(err.into()),
    }
    Ok(file)
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut file = fs_err::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of a generated `Cargo.toml`: `comment` as `#` lines, a private package `name`
/// depending on `dependencies`, then the `extra` tables (`[workspace]`, `[patch.crates-io]`,
/// …). Written through the toml crate, so names and paths are always quoted correctly.
pub fn cargo_toml(
    comment: &str,
    name: &str,
    dependencies: toml::Table,
    extra: toml::Table,
) -> String {
    let mut package = toml::Table::new();
    package.insert("name".into(), name.into());
    package.insert("version".into(), "0.0.0".into());
    package.insert("edition".into(), "2024".into());
    package.insert("publish".into(), false.into());
    let mut doc = toml::Table::new();
    doc.insert("package".into(), package.into());
    doc.insert("dependencies".into(), dependencies.into());
    doc.extend(extra);
    let mut text: String = comment.lines().map(|line| format!("# {line}\n")).collect();
    text.push_str(&doc.to_string());
    text
}

/// `name = "=version"` entries: exact pins.
pub fn exact_pins<'a>(pins: impl IntoIterator<Item = (&'a str, &'a str)>) -> toml::Table {
    pins.into_iter()
        .map(|(name, version)| (name.to_owned(), format!("={version}").into()))
        .collect()
}

/// A table from `key = value` pairs, for the small nested tables of a generated manifest.
pub fn toml_table<V: Into<toml::Value>>(
    entries: impl IntoIterator<Item = (&'static str, V)>,
) -> toml::Table {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_manifests_are_valid_toml_with_their_comment() {
        let mut extra = toml::Table::new();
        extra.insert("workspace".into(), toml::Table::new().into());
        let text = cargo_toml(
            "line one\nline two",
            "uvfix-x",
            exact_pins([("uv", "0.12.5"), ("we\"ird", "1.0.0")]),
            extra,
        );
        assert!(text.starts_with("# line one\n# line two\n"), "{text}");
        let doc: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(doc["package"]["name"].as_str(), Some("uvfix-x"));
        assert_eq!(doc["dependencies"]["uv"].as_str(), Some("=0.12.5"));
        assert_eq!(doc["dependencies"]["we\"ird"].as_str(), Some("=1.0.0"));
        assert!(doc["workspace"].is_table());
    }
}
