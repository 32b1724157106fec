//! The unit tests our series adds to the patched crates run, through the fixture, as part
//! of this suite: `cargo xtask test-patched` builds them in the generated workspace (shared
//! target dir) and runs them.

use std::process::Command;

#[test]
fn unit_tests_of_the_patched_crates_pass() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["xtask", "test-patched"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo xtask test-patched");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo xtask test-patched failed:\n{stdout}\n{stderr}"
    );
    // Guard against a vacuous pass: the series adds tests, so some must have run.
    let ran: usize = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("test result: ok. "))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(ran > 0, "no unit test ran:\n{stdout}");
    println!("{ran} unit tests of the patched crates passed");
}
