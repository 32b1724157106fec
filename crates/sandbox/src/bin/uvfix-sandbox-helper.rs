//! The sandbox helper under a crate-local name, so this crate's own integration tests get it as
//! `CARGO_BIN_EXE_uvfix-sandbox-helper`. The fixture's tests use the root package's identical
//! `uvfix-sandbox` binary.
fn main() -> std::process::ExitCode {
    uvfix_sandbox::helper_main()
}
