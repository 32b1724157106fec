//! The fixture's two builds are the release we pin: both answer `--version` with it.

use std::process::Command;

use rstest::rstest;
use uvfix_pipeline::builder::{Variant, uv_for_tests};
use uvfix_pipeline::{Manifest, Paths};

#[rstest]
#[case::patched(Variant::Patched)]
#[case::pristine(Variant::Pristine)]
fn uv_and_uvx_report_the_pinned_release(#[case] variant: Variant) {
    let root = Paths::new(env!("CARGO_MANIFEST_DIR"));
    let pinned = Manifest::load(&root.patches()).unwrap().uv.version;
    let uv = uv_for_tests(variant).unwrap();
    let uvx = uv.with_file_name(format!("uvx{}", std::env::consts::EXE_SUFFIX));

    for (binary, name) in [(&uv, "uv"), (&uvx, "uvx")] {
        let output = Command::new(binary).arg("--version").output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name} --version failed: {output:?}"
        );
        assert!(
            stdout.starts_with(&format!("{name} {pinned}")),
            "{} reports `{}`, expected {name} {pinned}",
            binary.display(),
            stdout.trim()
        );
    }
}

#[test]
fn patched_and_pristine_are_different_builds() {
    let patched = uv_for_tests(Variant::Patched).unwrap();
    let pristine = uv_for_tests(Variant::Pristine).unwrap();
    assert_ne!(patched, pristine);
    let manifest = Manifest::load(&Paths::new(env!("CARGO_MANIFEST_DIR")).patches()).unwrap();
    if !manifest.steps.is_empty() {
        assert_ne!(
            fs_err::read(&patched).unwrap(),
            fs_err::read(&pristine).unwrap(),
            "the stack is not empty, yet patched and pristine uv are byte-identical"
        );
    }
}
