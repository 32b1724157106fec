//! The per-step expectations (`uvfix_scenario::stack`) are written for one list of steps; the
//! stack itself is `patches/series.toml` (and every base's `patches/<VERSION>/series.toml`,
//! which carries the same steps). `cargo xtask matrix --steps` refuses to run when they
//! disagree, but only once its builds are done: this test says so in the suite, at once.

use uvfix_pipeline::{Manifest, Paths};
use uvfix_scenario::stack;

#[test]
fn the_per_step_data_is_written_for_every_base_s_stack() {
    // The fixture's root, wherever the test runs from (nextest and cargo use the crate dir).
    let root = fs_err::canonicalize(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .expect("the fixture's root");
    let default = Paths::new(&root);
    let bases = default.bases().expect("listing patches/");
    assert!(!bases.is_empty());
    for base in bases {
        let paths = default
            .with_base(Some(&base))
            .expect("a base patches/ names");
        let manifest =
            Manifest::load(&paths.patches()).unwrap_or_else(|err| panic!("base {base}: {err}"));
        let ids: Vec<&str> = manifest.steps.iter().map(|s| s.id.as_str()).collect();
        if let Err(err) = stack::check_stack(&ids) {
            panic!(
                "base {base} ({}): {err}; update crates/scenario/src/stack.rs",
                paths.patches().join(Manifest::FILE).display()
            );
        }
    }
}
