//! `cargo xtask bench`'s command line; the benchmarks are `uvfix_bench`'s.

use clap::Args;

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Timed runs per variant.
    #[arg(long, default_value_t = 21)]
    runs: usize,
    /// Only the matrix section.
    #[arg(long, conflicts_with = "no_matrix")]
    matrix_only: bool,
    /// Only the timings, the instruction counts and the syscall count: no matrix section (the
    /// longest part).
    #[arg(long)]
    no_matrix: bool,
    /// Sandboxes of the matrix section (default: all).
    #[arg(long, value_delimiter = ',')]
    matrix_sandbox: Option<Vec<String>>,
    /// Scenarios of the matrix section; `all` for every one.
    #[arg(long, value_delimiter = ',', default_value = "S1,S4,S7")]
    matrix_scenario: Vec<String>,
    /// Cells run at once in the matrix section (default: the number of CPUs).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
}

impl From<BenchArgs> for uvfix_bench::Options {
    fn from(args: BenchArgs) -> Self {
        Self {
            runs: args.runs,
            matrix_only: args.matrix_only,
            no_matrix: args.no_matrix,
            matrix_sandbox: args.matrix_sandbox,
            matrix_scenario: args.matrix_scenario,
            jobs: args.jobs,
        }
    }
}
