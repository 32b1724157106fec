//! Running the tools these commands drive (git, cargo, GNU patch): captured, or with their
//! output shown as it happens.

use std::process::Command;

use anyhow::{Context, Result, bail};
use uvfix_process::shown;

/// Run `command` through the fixture's process runner; its stdout, or an error with stderr.
pub(crate) fn output(command: &mut Command) -> Result<String> {
    Ok(uvfix_process::checked(command)?.stdout_text())
}

/// Run `command` with inherited stdout/stderr (cargo's progress stays visible).
pub(crate) fn status(command: &mut Command) -> Result<()> {
    let shown = shown(command);
    let status = command
        .status()
        .with_context(|| format!("cannot run `{shown}`; is it installed?"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}
