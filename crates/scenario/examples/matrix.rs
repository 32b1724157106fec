//! Run a slice of the matrix and write the reports, for measuring by hand:
//!
//! ```text
//! cargo build -p uvfix-sandbox --bin uvfix-sandbox-helper
//! cargo run -p uvfix-scenario --example matrix -- \
//!     --uv official-0.12.5=/tmp/uvwheel/x/uv-0.12.5.data/scripts/uv \
//!     --helper target/debug/uvfix-sandbox-helper \
//!     --sandbox none,ro-home,landlock,foreign-owner --scenario all --state warm --out /tmp/uvfix-report
//! ```
//!
//! Lists are comma-separated names or `all`. `--uv` may be repeated.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use uvfix_sandbox::Sandbox;
use uvfix_scenario::cell::{UvUnderTest, run_cell};
use uvfix_scenario::{CacheState, ScenarioId, report};

fn list<T: Copy>(
    value: &str,
    all: &[T],
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<Vec<T>> {
    if value == "all" {
        return Ok(all.to_vec());
    }
    value
        .split(',')
        .map(|n| parse(n).with_context(|| format!("unknown name `{n}`")))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut uvs = Vec::new();
    let mut helper = PathBuf::from("target/debug/uvfix-sandbox-helper");
    let mut sandboxes = vec![Sandbox::None];
    let mut scenarios = ScenarioId::ALL.to_vec();
    let mut states = vec![CacheState::Warm];
    let mut out = PathBuf::from("target/uvfix-report");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--uv" => {
                let (label, path) = value.split_once('=').context("--uv LABEL=PATH")?;
                uvs.push(UvUnderTest::new(label, path));
            }
            "--helper" => helper = value.into(),
            "--sandbox" => sandboxes = list(&value, &Sandbox::ALL, Sandbox::from_name)?,
            "--scenario" => scenarios = list(&value, &ScenarioId::ALL, ScenarioId::from_name)?,
            "--state" => states = list(&value, &CacheState::ALL, CacheState::from_name)?,
            "--out" => out = value.into(),
            other => bail!("unknown flag {other}"),
        }
    }
    if uvs.is_empty() {
        uvs.push(UvUnderTest::official().map_err(anyhow::Error::msg)?);
    }
    let helper = std::path::absolute(&helper)?;
    let mut results = Vec::new();
    for &scenario in &scenarios {
        for &state in &states {
            for &sandbox in &sandboxes {
                for uv in &uvs {
                    let r = run_cell(uv, sandbox, scenario, state, &helper);
                    eprintln!(
                        "{:<16} {:<14} {} {:<24} {:<5} exit={:?} {}ms {}",
                        r.uv_label,
                        r.sandbox,
                        r.scenario,
                        r.state.name(),
                        r.outcome.word(),
                        r.exit_code,
                        r.duration_ms,
                        match &r.outcome {
                            uvfix_scenario::Outcome::Fail(m) | uvfix_scenario::Outcome::Skip(m) =>
                                m.clone(),
                            _ => uvfix_scenario::expect::first_error_line(&r.stderr),
                        }
                    );
                    results.push(r);
                }
            }
        }
    }
    let files = report::write_reports(&results, &out)?;
    print!("{}", report::render_table(&results));
    eprintln!("reports: {}", files.json.parent().unwrap_or(&out).display());
    Ok(())
}
