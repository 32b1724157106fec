//! Each step is a pull request that uv's CI checks with `cargo fmt --check`: after every step,
//! the Rust the stack touches is as rustfmt leaves it (`cargo xtask patch fmt`, which compares
//! with the pristine files, so that upstream's own formatting is not ours to fix).

use std::process::{Command, ExitCode};

use uvfix_sandbox::trial::{self, Failed, case};

fn main() -> ExitCode {
    trial::run(vec![case(
        "every_step_is_as_rustfmt_leaves_it",
        rustfmt_missing(),
        every_step_is_as_rustfmt_leaves_it,
    )])
}

fn rustfmt_missing() -> Option<String> {
    match Command::new("rustfmt").arg("--version").output() {
        Ok(output) if output.status.success() => None,
        _ => Some("rustfmt is not installed (`rustup component add rustfmt`)".to_string()),
    }
}

fn every_step_is_as_rustfmt_leaves_it() -> Result<(), Failed> {
    // `vendor` prepares every step's tree (the builds only need patched and pristine).
    uvfix::cargo(&["xtask", "vendor"])?;
    Ok(uvfix::cargo(&["xtask", "patch", "fmt"])?)
}
