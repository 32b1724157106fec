//! The sandbox helper: applies a Landlock policy and execs, or runs the canary.
fn main() -> std::process::ExitCode {
    uvfix_sandbox::helper_main()
}
