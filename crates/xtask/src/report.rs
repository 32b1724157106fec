//! `cargo xtask report`: write `docs/results.md` from the reports the runs left under
//! `target/uvfix/` (the rendering is `uvfix_scenario::report::results`'s).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use uvfix_pipeline::Paths;
use uvfix_scenario::report::results::{self, Header, Locations, Machine, Reports};

pub(crate) fn run(paths: &Paths, out: Option<PathBuf>) -> Result<()> {
    let default = paths.with_base(None)?;
    let bases = default.bases()?;
    let other_bases: Vec<(String, PathBuf)> = bases[1..]
        .iter()
        .map(|base| Ok((base.clone(), default.with_base(Some(base))?.base_work())))
        .collect::<Result<_>>()?;
    let work = default.work();
    let reports = Reports::load(&Locations {
        root: &paths.root,
        default_base: &bases[0],
        work: &work,
        other_bases: &other_bases,
    })?;
    let header = Header {
        generated: results::utc(std::time::SystemTime::now()),
        commit: commit(&paths.root)?,
        machine: Machine::detect(),
    };
    let out = out.unwrap_or_else(|| paths.root.join("docs").join("results.md"));
    if let Some(dir) = out.parent() {
        fs_err::create_dir_all(dir)?;
    }
    fs_err::write(&out, results::render_results(&header, &reports))?;
    eprintln!(
        "uvfix: wrote {}",
        out.strip_prefix(&paths.root).unwrap_or(&out).display()
    );
    Ok(())
}

/// `HEAD`'s commit, and whether the tree had changes besides the results file itself (which a
/// rerun rewrites, so it must not make every second run "with changes").
fn commit(root: &Path) -> Result<String> {
    let git = |args: &[&str]| -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .context("running git")?;
        anyhow::ensure!(
            out.status.success(),
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let changed = git(&[
        "status",
        "--porcelain",
        "--",
        ".",
        ":(exclude)docs/results.md",
    ])?;
    Ok(if changed.is_empty() {
        head
    } else {
        format!("{head}, with uncommitted changes")
    })
}
