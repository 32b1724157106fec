//! What the fixture's integration tests in `tests/` share: the uv builds under test, the
//! sandbox helper, and running `cargo xtask`. Under nextest both come from the setup scripts (`.config/nextest.toml`:
//! `cargo xtask build all` and `cargo xtask sandbox-helper` hand their paths over); run
//! otherwise, they are built on demand.

use std::path::PathBuf;
use std::process::Command;

use uvfix_pipeline::builder::{self, Variant};
use uvfix_scenario::Build;
use uvfix_scenario::cell::UvUnderTest;

/// The `uvfix-sandbox` helper binary.
pub fn sandbox_helper() -> Result<PathBuf, String> {
    builder::helper_for_tests().map_err(|err| err.to_string())
}

/// Patched and pristine always; the official release too when `$UVFIX_UV` names one
/// (`ci/fetch-official-uv.sh`). Listing must not build uv, so while listing the paths are
/// placeholders.
pub fn builds_under_test(listing: bool) -> Result<Vec<UvUnderTest>, String> {
    let mut uvs = Vec::new();
    for variant in Variant::ALL {
        let uv = if listing {
            PathBuf::from(variant.name())
        } else {
            builder::uv_for_tests(variant).map_err(|err| err.to_string())?
        };
        let build = match variant {
            Variant::Patched => Build::Patched,
            Variant::Pristine => Build::Pristine,
            Variant::Step(_) => unreachable!("Variant::ALL holds no partial stack"),
        };
        uvs.push(UvUnderTest::new(build, uv));
    }
    uvs.extend(UvUnderTest::official()?);
    Ok(uvs)
}

/// Run `cargo ARGS` (`xtask …`) in the fixture's root; a failure carries its whole output.
pub fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|err| format!("running cargo {}: {err}", args.join(" ")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "cargo {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}
