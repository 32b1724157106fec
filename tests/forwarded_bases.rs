//! A base with a `[forward]` table (`patches/<VERSION>/series.toml`) has a generated stack:
//! `cargo xtask upstream forward write --base VERSION` makes it from the default stack plus the
//! base's recorded hand work. The committed stack must be what that command writes now, or a
//! change to the default stack was not carried over (or the generated stack was edited by
//! hand, and the next `write` would undo the edit).

use std::path::Path;
use std::process::{Command, ExitCode};

use uvfix_pipeline::{Manifest, Paths};
use uvfix_sandbox::trial::{self, Failed, case};

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = forwarded_bases(root)
        .into_iter()
        .map(|base| {
            let name = format!(
                "base_{}_is_what_forward_write_makes",
                base.replace('.', "_")
            );
            case(&name, gnu_patch_missing(), move || {
                is_what_forward_write_makes(&base)
            })
        })
        .collect();
    trial::run(cases)
}

/// The bases whose series.toml has a `[forward]` table.
fn forwarded_bases(root: &Path) -> Vec<String> {
    let paths = Paths::new(root);
    let bases = paths.bases().expect("patches/ lists the bases");
    bases
        .into_iter()
        .skip(1) // the default base, the source of the others
        .filter(|base| {
            let dir = paths
                .with_base(Some(base))
                .expect("a listed base")
                .patches();
            let manifest = Manifest::load_to_forward(&dir).expect("a listed base loads");
            manifest.forward.is_some()
        })
        .collect()
}

fn gnu_patch_missing() -> Option<String> {
    match Command::new("patch").arg("--version").output() {
        Ok(output) if output.status.success() => None,
        _ => {
            Some("GNU patch is not installed (apt-get install patch, or ci/install-deps.sh)".into())
        }
    }
}

fn is_what_forward_write_makes(base: &str) -> Result<(), Failed> {
    let args = [
        "xtask", "upstream", "forward", "write", "--base", base, "--check",
    ];
    Ok(uvfix::cargo(&args)?)
}
