//! The matrix section of `cargo xtask bench`: the same cells run twice, each cell warming its
//! own cache (as before warm snapshots) and warmed once per (uv, scenario, state) and copied,
//! with cells per second, cost per cell and the fixture's overhead against uv's own time.

use std::path::Path;

use anyhow::Result;
use uvfix_pipeline::builder::{self, Variant};
use uvfix_scenario::cell::UvUnderTest;
use uvfix_scenario::plan::{self, Filter};
use uvfix_scenario::pool::run_cells;
use uvfix_scenario::report::{Cost, Summary};

/// Run the cells of `uvs` × `filter` both ways; the report section.
pub(crate) fn section(
    uvs: &[UvUnderTest],
    filter: &Filter,
    jobs: usize,
    helper: &Path,
) -> Result<String> {
    let cells = plan::cells(uvs, filter);
    let mut report = format!(
        "matrix: {} cells ({}), {jobs} at a time; cost per cell over the cells that ran:\n",
        cells.len(),
        describe(uvs, filter)
    );
    report.push_str(
        "  mode                 cells  wall s  cells/s  median s  p95 s  uv median s  overhead/uv  FAIL\n",
    );
    let mut costs = Vec::new();
    for (mode, warm_per_cell) in [("warm per cell", true), ("warm once, copied", false)] {
        let pristine = builder::given(Variant::Pristine);
        let (results, cost) = run_cells(&cells, jobs, helper, warm_per_cell, pristine.as_deref())?;
        report.push_str(&row(mode, &cost, Summary::of(&results).fail));
        costs.push(cost);
    }
    if let [before, after] = &costs[..]
        && after.wall_ms > 0
    {
        report.push_str(&format!(
            "  speed-up of the copies: {:.2}x cells/s; warms {} → {}\n",
            before.wall_ms as f64 / after.wall_ms as f64,
            before.warmed,
            after.warmed
        ));
    }
    Ok(report)
}

fn describe(uvs: &[UvUnderTest], filter: &Filter) -> String {
    let builds: Vec<String> = uvs.iter().map(|uv| uv.build.to_string()).collect();
    let list = |names: Option<Vec<String>>| names.map_or("all".to_owned(), |n| n.join(","));
    format!(
        "uv {}; sandboxes {}; scenarios {}; states {}",
        builds.join(","),
        list(
            filter
                .sandboxes
                .as_ref()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
        ),
        list(
            filter
                .scenarios
                .as_ref()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
        ),
        list(
            filter
                .states
                .as_ref()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
        ),
    )
}

fn row(mode: &str, cost: &Cost, fail: usize) -> String {
    let s = |ms: u64| ms as f64 / 1000.0;
    format!(
        "  {mode:<19} {:>6} {:>7.1} {:>8.2} {:>9.2} {:>6.2} {:>12.2} {:>12.2} {fail:>5}\n",
        cost.cells,
        s(cost.wall_ms),
        cost.cells_per_second(),
        s(cost.median_ms),
        s(cost.p95_ms),
        s(cost.uv_median_ms),
        cost.overhead_median,
    )
}
