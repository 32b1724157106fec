//! The sandbox helper (Landlock wrapper, canary) under a crate-local name, so this crate's
//! integration tests can reach it as `CARGO_BIN_EXE_uvfix-scenario-helper`.
fn main() -> std::process::ExitCode {
    uvfix_sandbox::helper_main()
}
