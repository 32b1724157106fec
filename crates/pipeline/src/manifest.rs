//! `patches/series.toml`: the pinned uv release, the crates the series touches, and the
//! ordered list of patch files.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

/// The parsed series manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The `uv` crate release the series is written against.
    pub uv: Release,
    /// Every crate the series touches, pinned at the version the release's `Cargo.lock` names.
    #[serde(rename = "crate", default)]
    pub crates: Vec<PinnedCrate>,
    /// Patch files relative to `patches/`, applied in this order. The first path component
    /// names the crate a patch applies to (`uv-fs/0001-….patch`).
    #[serde(default)]
    pub series: Vec<PathBuf>,
    /// Where the manifest was read from (`patches/`).
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    /// sha256 of `uv-<version>.crate`, as the crates.io index records it.
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedCrate {
    pub name: String,
    pub version: String,
}

/// One entry of the series, resolved against the manifest.
#[derive(Debug, Clone)]
pub struct SeriesEntry {
    /// Path as written in the manifest (`uv-fs/0001-….patch`).
    pub rel: PathBuf,
    /// Absolute path of the patch file.
    pub path: PathBuf,
    /// The crate it applies to.
    pub krate: String,
}

impl Manifest {
    pub const FILE: &'static str = "series.toml";

    /// Read and validate `dir/series.toml`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(Self::FILE);
        let text = fs_err::read_to_string(&path)?;
        let mut manifest: Manifest = toml::from_str(&text).map_err(|source| Error::Manifest {
            path: path.clone(),
            message: source.to_string(),
        })?;
        manifest.dir = dir.to_path_buf();
        manifest.validate(&path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        let bad = |message: String| Error::Manifest {
            path: path.to_path_buf(),
            message,
        };
        for entry in self.entries() {
            let entry = entry.map_err(&bad)?;
            if !entry.path.is_file() {
                return Err(bad(format!(
                    "the series lists `{}`, but {} does not exist",
                    entry.rel.display(),
                    entry.path.display()
                )));
            }
        }
        let mut names: Vec<_> = self.crates.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("crate `{}` is pinned twice", dup[0])));
        }
        Ok(())
    }

    /// The series in order, each entry tied to the crate it patches.
    pub fn entries(&self) -> impl Iterator<Item = Result<SeriesEntry, String>> + '_ {
        self.series.iter().map(|rel| {
            let krate = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .filter(|_| rel.components().count() == 2)
                .ok_or_else(|| {
                    format!(
                        "series entry `{}` must be `<crate>/<file>.patch`",
                        rel.display()
                    )
                })?
                .to_string();
            if !self.crates.iter().any(|c| c.name == krate) {
                return Err(format!(
                    "series entry `{}` patches `{krate}`, which is not pinned in a [[crate]] table",
                    rel.display()
                ));
            }
            Ok(SeriesEntry {
                path: self.dir.join(rel),
                rel: rel.clone(),
                krate,
            })
        })
    }

    /// The series entries for one crate, in order.
    pub fn entries_for(&self, krate: &str) -> Vec<SeriesEntry> {
        self.entries()
            .filter_map(Result::ok)
            .filter(|e| e.krate == krate)
            .collect()
    }
}
