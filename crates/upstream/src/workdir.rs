//! Where these commands write (`target/uvfix/upstream/`), and how they name paths in
//! messages.

use std::path::{Path, PathBuf};

use anyhow::Result;
use uvfix_pipeline::Paths;

/// `target/uvfix/upstream/` (`target/uvfix/bases/<VERSION>/upstream/` for another base than
/// the default): everything these commands generate.
pub(crate) fn dir(paths: &Paths) -> PathBuf {
    paths.base_work().join("upstream")
}

/// Remove `dir` if it exists, then create it empty.
pub(crate) fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs_err::remove_dir_all(dir)?;
    }
    fs_err::create_dir_all(dir)?;
    Ok(())
}

/// `path` relative to the fixture root when it is below it, for shorter messages.
pub(crate) fn display(paths: &Paths, path: &Path) -> String {
    path.strip_prefix(&paths.root)
        .unwrap_or(path)
        .display()
        .to_string()
}
