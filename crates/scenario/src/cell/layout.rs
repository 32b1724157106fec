//! A cell's directories and the uv binaries staged in them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use uvfix_sandbox::Layout;

/// The cell's directories, world-traversable so that foreign-owner's uid can walk them.
///
/// Besides the [`Layout`] it has, inside `home` (the one tree every sandbox shows, at least
/// read-only: ro-home puts a private tmpfs over the rest of `/tmp`, docker mounts only the
/// layout):
/// - `home/wheels/`: the find-links directory;
/// - `home/.local/bin/`: the uv and uvx under test, staged where the official installer puts
///   them, so that `uvx` finds its sibling `uv` and uid 65534 can execute both.
#[derive(Debug, Clone)]
pub struct CellDirs {
    pub layout: Layout,
    pub wheels: PathBuf,
    pub bin: PathBuf,
}

pub fn make_layout(root: &Path) -> std::io::Result<CellDirs> {
    let layout = Layout {
        home: root.join("home"),
        cache: root.join("home/.cache/uv"),
        workspace: root.join("workspace"),
        tmp: root.join("tmp"),
    };
    let wheels = layout.home.join("wheels");
    let bin = layout.home.join(".local/bin");
    let local = layout.home.join(".local");
    for dir in [
        root,
        &layout.home,
        &layout.workspace,
        &layout.tmp,
        &wheels,
        &local,
        &bin,
    ] {
        fs_err::create_dir_all(dir)?;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(CellDirs {
        layout,
        wheels,
        bin,
    })
}

/// Put `src` at `dest` (mode 0755): a hard link when that is free and already executable by
/// everyone (uv is a large binary and the matrix has hundreds of cells), else a copy.
pub fn stage_binary(src: &Path, dest: &Path) -> std::io::Result<()> {
    let src_mode = fs_err::metadata(src)?.permissions().mode();
    if src_mode & 0o005 == 0o005 && fs_err::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    fs_err::copy(src, dest)?;
    fs_err::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;
    use assert_fs::prelude::*;
    use predicates::prelude::*;

    #[test]
    fn layout_is_world_traversable() {
        let dir = assert_fs::TempDir::new().unwrap();
        let root = dir.child("root");
        let CellDirs {
            layout,
            wheels,
            bin,
        } = make_layout(root.path()).unwrap();
        for d in [
            root.path(),
            &layout.home,
            &layout.workspace,
            &layout.tmp,
            &wheels,
            &bin,
        ] {
            let mode = fs_err::metadata(d).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755, "{}", d.display());
        }
        assert_eq!(layout.cache, layout.home.join(".cache/uv"));
        root.child("home/.cache/uv")
            .assert(predicate::path::missing());
    }
}
