//! The vendor-and-patch pipeline, driven with small fake crates so each behaviour is pinned
//! without the network: checksum refusal, failing hunks, no-op reruns, multi-crate steps,
//! patch regeneration.

use std::path::{Path, PathBuf};

use assert_fs::TempDir;
use assert_fs::prelude::*;
use predicates::prelude::*;
use sha2::Digest;
use uvfix_pipeline::manifest::Manifest;
use uvfix_pipeline::vendor::{self, CrateSource, Outcome};
use uvfix_pipeline::{Error, refresh};

const LIB_RS: &str =
    "pub fn open_marker() {\n    // open for writing\n    write();\n}\n\nfn write() {}\n";

/// A `.crate` (gzipped tar of `<name>-0.1.0/…`) holding `files`.
fn fake_crate(dir: &Path, name: &str, files: &[(&str, &str)]) -> CrateSource {
    let path = dir.join(format!("{name}-0.1.0.crate"));
    let file = fs_err::File::create(&path).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::default(),
    ));
    for (file, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("{name}-0.1.0/{file}"),
                contents.as_bytes(),
            )
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    let checksum = format!("{:x}", sha2::Sha256::digest(fs_err::read(&path).unwrap()));
    CrateSource {
        name: name.into(),
        version: "0.1.0".into(),
        crate_file: path,
        checksum,
        origin: "the test".into(),
    }
}

fn demo_crate(dir: &Path) -> CrateSource {
    fake_crate(
        dir,
        "demo",
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"demo\"\nversion = \"0.1.0\"\n",
            ),
            ("src/lib.rs", LIB_RS),
        ],
    )
}

const GOOD_PATCH: &str = "\
Subject: demo: open the marker read-only

Why: a read-only cache.
---
diff --git a/demo/src/lib.rs b/demo/src/lib.rs
--- a/demo/src/lib.rs
+++ b/demo/src/lib.rs
@@ -1,5 +1,5 @@
 pub fn open_marker() {
-    // open for writing
+    // open without write access
     write();
 }
 
";

/// `patches/` with a series.toml whose stack is `patches` (file name, contents), bottom first,
/// over the crates `demo` and `other`.
fn series(root: &TempDir, patches: &[(&str, &str)]) -> Manifest {
    let dir = root.child("patches");
    let mut toml = String::from(
        "[uv]\nversion = \"0.0.0\"\nchecksum = \"00\"\n\
         [[crate]]\nname = \"demo\"\nversion = \"0.1.0\"\n\
         [[crate]]\nname = \"other\"\nversion = \"0.1.0\"\n",
    );
    for (number, (name, text)) in patches.iter().enumerate() {
        let id = name
            .trim_end_matches(".patch")
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
        toml.push_str(&format!(
            "[[step]]\nid = \"{id}\"\npatch = \"stack/{name}\"\nstatus = \"proposed\"\nclaim = \"step {}\"\n",
            number + 1
        ));
        dir.child("stack").child(name).write_str(text).unwrap();
    }
    dir.child("series.toml").write_str(&toml).unwrap();
    Manifest::load(dir.path()).unwrap()
}

/// Vendor `source` with the whole stack of `manifest` into `crates`.
fn prepare(
    crates: &assert_fs::fixture::ChildPath,
    source: &CrateSource,
    manifest: &Manifest,
) -> Outcome {
    vendor::prepare(
        crates.path(),
        std::slice::from_ref(source),
        &manifest.steps,
        false,
    )
    .unwrap()
}

fn lib_rs(crates: &Path) -> String {
    fs_err::read_to_string(crates.join("demo/src/lib.rs")).unwrap()
}

#[test]
fn checksum_mismatch_is_refused_and_nothing_is_extracted() {
    let tmp = TempDir::new().unwrap();
    let mut source = demo_crate(tmp.path());
    source.checksum = "0".repeat(64);
    let crates = tmp.child("crates-pristine");

    let err = vendor::prepare(crates.path(), &[source], &[], false).unwrap_err();

    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    assert!(
        predicate::str::contains("demo-0.1.0.crate")
            .and(predicate::str::contains("0".repeat(64)))
            .and(predicate::str::contains("the test"))
            .eval(&err.to_string()),
        "{err}"
    );
    crates.assert(predicate::path::missing());
}

#[test]
fn a_tampered_crate_file_is_refused() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let mut bytes = fs_err::read(&source.crate_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs_err::write(&source.crate_file, bytes).unwrap();

    let err = vendor::verify(&source).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
}

#[test]
fn the_stack_is_applied_to_the_patched_tree_only() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let manifest = series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    let (patched, pristine) = (tmp.child("crates-patched"), tmp.child("crates-pristine"));

    prepare(&patched, &source, &manifest);
    vendor::prepare(pristine.path(), &[source], &[], false).unwrap();

    assert!(lib_rs(patched.path()).contains("open without write access"));
    assert_eq!(lib_rs(pristine.path()), LIB_RS);
}

#[test]
fn a_hunk_that_does_not_apply_names_patch_file_and_hunk_and_builds_nothing() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let broken = GOOD_PATCH.replace(" pub fn open_marker() {", " pub fn open_marker_v2() {");
    let manifest = series(&tmp, &[("0001-read-only.patch", &broken)]);
    let crates = tmp.child("crates-patched");

    let err = vendor::prepare(crates.path(), &[source], &manifest.steps, false).unwrap_err();

    let message = err.to_string();
    assert!(
        predicate::str::contains("0001-read-only.patch")
            .and(predicate::str::contains("demo/src/lib.rs"))
            .and(predicate::str::contains("hunk #1"))
            .and(predicate::str::contains("@@ -1,5 +1,5 @@"))
            .eval(&message),
        "{message}"
    );
    crates.assert(predicate::path::missing());
}

#[test]
fn a_failing_new_patch_leaves_the_previous_tree_in_place() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let manifest = series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    let crates = tmp.child("crates-patched");
    prepare(&crates, &source, &manifest);

    let broken = "Subject: demo: x\n---\ndiff --git a/demo/src/lib.rs b/demo/src/lib.rs\n--- a/demo/src/lib.rs\n+++ b/demo/src/lib.rs\n@@ -6,1 +6,1 @@\n-fn missing() {}\n+fn other() {}\n";
    let manifest = series(
        &tmp,
        &[
            ("0001-read-only.patch", GOOD_PATCH),
            ("0002-broken.patch", broken),
        ],
    );
    let err = vendor::prepare(crates.path(), &[source], &manifest.steps, false).unwrap_err();

    assert!(err.to_string().contains("0002-broken.patch"), "{err}");
    assert!(lib_rs(crates.path()).contains("open without write access"));
}

#[test]
fn a_rerun_with_nothing_changed_does_nothing() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let manifest = series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    let crates = tmp.child("crates-patched");

    let first = prepare(&crates, &source, &manifest);
    let lib = crates.path().join("demo/src/lib.rs");
    let before = fs_err::metadata(&lib).unwrap().modified().unwrap();
    let second = vendor::prepare(crates.path(), &[source], &manifest.steps, false).unwrap();

    assert_eq!(first, Outcome::Prepared);
    assert_eq!(second, Outcome::UpToDate);
    assert_eq!(fs_err::metadata(&lib).unwrap().modified().unwrap(), before);
}

#[test]
fn local_edits_are_kept_and_never_silently_overwritten() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let manifest = series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    let crates = tmp.child("crates-patched");
    prepare(&crates, &source, &manifest);
    let lib = crates.path().join("demo/src/lib.rs");
    fs_err::write(&lib, lib_rs(crates.path()) + "// my edit\n").unwrap();

    // Same inputs: the edit is reported and kept.
    let outcome = prepare(&crates, &source, &manifest);
    assert_eq!(outcome, Outcome::LocalEdits(vec!["demo".into()]));

    // Changed inputs would re-extract: refused unless forced.
    let manifest = series(&tmp, &[]);
    let err = vendor::prepare(crates.path(), &[source], &manifest.steps, false).unwrap_err();
    assert!(matches!(err, Error::LocalEdits { .. }), "{err}");
    assert!(err.to_string().contains("vendor --force"), "{err}");
    assert!(lib_rs(crates.path()).ends_with("// my edit\n"));
}

/// `vendor --force` discards an edit even when the stack did not change.
#[test]
fn force_discards_local_edits_under_the_same_inputs() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let manifest = series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    let crates = tmp.child("crates-patched");
    prepare(&crates, &source, &manifest);
    let patched = lib_rs(crates.path());
    let lib = crates.path().join("demo/src/lib.rs");
    fs_err::write(&lib, patched.clone() + "// my edit\n").unwrap();

    let outcome = vendor::prepare(crates.path(), &[source], &manifest.steps, true).unwrap();

    assert_eq!(outcome, Outcome::Prepared);
    assert_eq!(lib_rs(crates.path()), patched);
}

#[test]
fn an_edit_the_new_stack_reproduces_is_not_a_loss() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let crates = tmp.child("crates-patched");
    prepare(&crates, &source, &series(&tmp, &[]));
    // Edit the pristine tree into exactly what the new patch makes, as `patch refresh` or
    // `upstream forward record` leave it: the edit is now in patches/.
    let lib = crates.path().join("demo/src/lib.rs");
    let manifest = series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    let scratch = tmp.child("expected");
    prepare(&scratch, &source, &manifest);
    fs_err::write(&lib, lib_rs(scratch.path())).unwrap();

    let outcome = vendor::prepare(crates.path(), &[source], &manifest.steps, false).unwrap();

    assert_eq!(outcome, Outcome::Prepared);
    assert!(lib_rs(crates.path()).contains("open without write access"));
}

fn refresh_fixture(tmp: &TempDir) -> (CrateSource, Manifest, PathBuf) {
    let source = demo_crate(tmp.path());
    let manifest = series(tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    let crates = tmp.child("crates-patched");
    prepare(&crates, &source, &manifest);
    (source, manifest, crates.path().to_path_buf())
}

#[test]
fn refreshing_an_unchanged_edit_reproduces_the_patch_byte_for_byte() {
    let tmp = TempDir::new().unwrap();
    let (source, manifest, edited) = refresh_fixture(&tmp);
    let step = refresh::select(&manifest, "read-only").unwrap();

    let changed = refresh::refresh(&manifest, &[source], step, &edited, tmp.path()).unwrap();

    assert_eq!(fs_err::read_to_string(&step.path).unwrap(), GOOD_PATCH);
    assert!(!changed);
}

#[test]
fn refreshing_an_edit_rewrites_the_diff_and_keeps_the_header() {
    let tmp = TempDir::new().unwrap();
    let (source, manifest, edited) = refresh_fixture(&tmp);
    let lib = edited.join("demo/src/lib.rs");
    let text = fs_err::read_to_string(&lib).unwrap();
    fs_err::write(
        &lib,
        text.replace(
            "fn write() {}",
            "fn write() {\n    // never on a read-only cache\n}",
        ),
    )
    .unwrap();
    fs_err::write(edited.join("demo/src/new.rs"), "// a new module\n").unwrap();
    let step = refresh::select(&manifest, "1").unwrap();

    let sources = [source];
    assert!(refresh::refresh(&manifest, &sources, step, &edited, tmp.path()).unwrap());

    let patch = fs_err::read_to_string(&step.path).unwrap();
    assert!(
        patch.starts_with(
            "Subject: demo: open the marker read-only\n\nWhy: a read-only cache.\n---\n"
        )
    );
    assert!(patch.contains("+    // never on a read-only cache\n"));
    assert!(patch.contains("diff --git a/demo/src/new.rs b/demo/src/new.rs\nnew file mode 100644\n--- /dev/null\n+++ b/demo/src/new.rs\n"));

    // The regenerated stack reproduces the edited tree exactly.
    let again = tmp.child("again");
    let manifest = Manifest::load(&manifest.dir).unwrap();
    vendor::prepare(again.path(), &sources, &manifest.steps, false).unwrap();
    assert_eq!(
        vendor::tree_digest(&again.path().join("demo")).unwrap(),
        vendor::tree_digest(&edited.join("demo")).unwrap()
    );
}

/// A step's patch is the difference to the steps below it, whichever crates it touches.
#[test]
fn a_step_spans_crates_and_applies_on_top_of_the_steps_below() {
    let tmp = TempDir::new().unwrap();
    let demo = demo_crate(tmp.path());
    let other = fake_crate(
        tmp.path(),
        "other",
        &[("src/lib.rs", "pub fn other() {}\n")],
    );
    let both = "Subject: y\n---\n\
        diff --git a/demo/src/lib.rs b/demo/src/lib.rs\n--- a/demo/src/lib.rs\n+++ b/demo/src/lib.rs\n\
        @@ -2 +2 @@\n-    // open without write access\n+    // open read-only\n\
        diff --git a/other/src/lib.rs b/other/src/lib.rs\n--- a/other/src/lib.rs\n+++ b/other/src/lib.rs\n\
        @@ -1 +1 @@\n-pub fn other() {}\n+pub fn other() -> bool { true }\n";
    let manifest = series(
        &tmp,
        &[
            ("0001-read-only.patch", GOOD_PATCH),
            ("0002-both.patch", both),
        ],
    );
    let sources = [demo, other];

    let (first, all) = (tmp.child("crates-step-1"), tmp.child("crates-patched"));
    vendor::prepare(first.path(), &sources, manifest.prefix(1), false).unwrap();
    vendor::prepare(all.path(), &sources, &manifest.steps, false).unwrap();

    assert!(lib_rs(first.path()).contains("open without write access"));
    assert!(lib_rs(all.path()).contains("open read-only"));
    let other_rs = |dir: &Path| fs_err::read_to_string(dir.join("other/src/lib.rs")).unwrap();
    assert_eq!(other_rs(first.path()), "pub fn other() {}\n");
    assert!(other_rs(all.path()).contains("-> bool"));

    // Refreshing the upper step diffs against the lower one, not against pristine.
    let step = refresh::select(&manifest, "both").unwrap();
    refresh::refresh(&manifest, &sources, step, all.path(), tmp.path()).unwrap();
    let patch = fs_err::read_to_string(&step.path).unwrap();
    assert!(patch.contains("-    // open without write access\n+    // open read-only\n"));
    assert!(patch.contains("diff --git a/other/src/lib.rs b/other/src/lib.rs\n"));
}

#[test]
fn a_step_that_creates_files_outside_the_pinned_crates_is_refused() {
    let tmp = TempDir::new().unwrap();
    let source = demo_crate(tmp.path());
    let stray = "Subject: x\n---\ndiff --git a/elsewhere/lib.rs b/elsewhere/lib.rs\nnew file mode 100644\n--- /dev/null\n+++ b/elsewhere/lib.rs\n@@ -0,0 +1 @@\n+// stray\n";
    let manifest = series(&tmp, &[("0001-stray.patch", stray)]);
    let crates = tmp.child("crates-patched");

    let err = vendor::prepare(crates.path(), &[source], &manifest.steps, false).unwrap_err();

    let message = err.to_string();
    assert!(
        message.contains("0001-stray.patch") && message.contains("elsewhere/lib.rs"),
        "{message}"
    );
    crates.assert(predicate::path::missing());
}

#[test]
fn an_unknown_step_names_the_steps_there_are() {
    let tmp = TempDir::new().unwrap();
    let manifest = series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);

    let err = refresh::select(&manifest, "locks").unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
}

#[test]
fn a_step_without_its_file_is_a_manifest_error() {
    let tmp = TempDir::new().unwrap();
    tmp.child("patches/series.toml")
        .write_str("[uv]\nversion = \"0\"\nchecksum = \"0\"\n[[step]]\nid = \"gone\"\npatch = \"stack/0001-gone.patch\"\nstatus = \"proposed\"\nclaim = \"x\"\n")
        .unwrap();
    let err = Manifest::load(&tmp.path().join("patches")).unwrap_err();
    assert!(err.to_string().contains("stack/0001-gone.patch"), "{err}");
}

/// A base whose stack `upstream forward` writes: its missing patches say how to write them,
/// and `forward` may load it before they exist.
#[test]
fn a_base_to_forward_names_the_command_that_writes_its_stack() {
    let tmp = TempDir::new().unwrap();
    series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    tmp.child("patches/0.1.0/series.toml")
        .write_str(
            "[uv]\nversion = \"0.1.0\"\nchecksum = \"00\"\ntoolchain = \"nightly\"\n\
             [forward]\nfrom = \"0.0.0\"\n\
             [[forward.move]]\nfrom = \"demo/src/old.rs\"\nto = \"demo/src/new.rs\"\n\
             [[forward.move]]\nfrom = \"other/src/\"\nto = \"moved/src/\"\n\
             [[step]]\nid = \"read-only\"\npatch = \"stack/0001-read-only.patch\"\n\
             status = \"proposed\"\nclaim = \"x\"\n",
        )
        .unwrap();
    let dir = tmp.path().join("patches/0.1.0");
    let err = Manifest::load(&dir).unwrap_err();
    assert!(
        err.to_string()
            .contains("cargo xtask upstream forward write --base"),
        "{err}"
    );

    let base = Manifest::load_to_forward(&dir).unwrap();
    assert_eq!(base.uv.toolchain.as_deref(), Some("nightly"));
    assert_eq!(
        base.fixup(&base.steps[0]),
        dir.join("fixups/0001-read-only.patch")
    );
    let moves = base.forward.unwrap().moves;
    assert_eq!(
        moves[0].apply("demo/src/old.rs").as_deref(),
        Some("demo/src/new.rs")
    );
    assert_eq!(moves[0].apply("demo/src/old.rs.orig"), None);
    assert_eq!(
        moves[1].apply("other/src/a/b.rs").as_deref(),
        Some("moved/src/a/b.rs")
    );
}

/// `--base`: the default base's own version is the default; an unknown one lists the bases.
#[test]
fn bases_are_the_default_and_each_patches_subdirectory() {
    let tmp = TempDir::new().unwrap();
    series(&tmp, &[("0001-read-only.patch", GOOD_PATCH)]);
    tmp.child("patches/0.1.0/series.toml")
        .write_str("[uv]\nversion = \"0.1.0\"\nchecksum = \"00\"\n")
        .unwrap();
    let paths = uvfix_pipeline::Paths::new(tmp.path());
    assert_eq!(paths.bases().unwrap(), ["0.0.0", "0.1.0"]);

    let default = paths.with_base(Some("0.0.0")).unwrap();
    assert_eq!(default.base, None);
    assert_eq!(default.patches(), tmp.path().join("patches"));
    let other = paths.with_base(Some("0.1.0")).unwrap();
    assert_eq!(other.patches(), tmp.path().join("patches/0.1.0"));
    assert!(other.cargo_target().ends_with("bases/0.1.0/cargo-target"));
    assert_ne!(
        other.bin_dir(uvfix_pipeline::Variant::Patched),
        default.bin_dir(uvfix_pipeline::Variant::Patched)
    );

    let err = paths.with_base(Some("9.9.9")).unwrap_err().to_string();
    assert!(
        err.contains("no base `9.9.9`") && err.contains("0.0.0, 0.1.0"),
        "{err}"
    );
}

#[test]
fn local_edits_name_the_step_to_record_them_in() {
    let err = Error::LocalEdits {
        dir: PathBuf::from("build/step-1/crates-step-1/uv-cache"),
        step: Some("markers".into()),
    };
    let text = err.to_string();
    assert!(
        text.contains("`cargo xtask patch refresh markers`"),
        "{text}"
    );
    assert!(
        text.contains("upstream forward record --base … markers"),
        "{text}"
    );
}
