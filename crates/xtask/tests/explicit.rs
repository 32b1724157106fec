//! A run that names what to test and tests nothing fails, saying why (the implicit default run
//! is held to nothing of the kind: see `uvfix_scenario::explicit::Explicit`).

use std::path::Path;
use std::process::Command;

#[test]
fn a_named_sandbox_that_cannot_run_fails_the_run_with_its_reason() {
    let tmp = tempfile::Builder::new()
        .prefix("uvfix-explicit-")
        .tempdir()
        .unwrap();
    // A stand-in uv: the cells must not need one (and no uv is built for this test).
    for name in ["uv", "uvx"] {
        let path = tmp.path().join(name);
        fs_err::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
        fs_err::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("TMPDIR", tmp.path())
        .args([
            "matrix",
            "--custom-sandbox",
            "x=nonexistent-cmd",
            "--sandbox",
            "x",
        ])
        .arg(format!("--uv=patched={}", tmp.path().join("uv").display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing to test"), "{stderr}");
    assert!(
        stderr.contains("`nonexistent-cmd` not found on PATH"),
        "{stderr}"
    );
}
