//! What a matrix run cost: per cell (median, p95), in all, and the fixture's share of it
//! against uv's own run time, so that a regression in the fixture shows.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cell::CellResult;
use crate::expect::Outcome;

/// Costs over the cells that ran (skips cost nothing and are left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Cells that ran.
    pub cells: usize,
    /// Of those, the cells that warmed a cache themselves (the rest got a copy).
    pub warmed: usize,
    /// The run from first cell to last, wall clock.
    pub wall_ms: u64,
    pub median_ms: u64,
    pub p95_ms: u64,
    /// uv's own time in a cell (its sandboxed steps), median.
    pub uv_median_ms: u64,
    /// Per cell, (cell time − uv's time) / uv's time; the median of that.
    pub overhead_median: f64,
    /// The most the run's store took on disk at once (`crate::cell::store_peak`); `None`
    /// when not measured (every cell warming its own cache).
    #[serde(default)]
    pub store_peak_bytes: Option<u64>,
}

impl Cost {
    pub fn of(results: &[CellResult], wall: Duration) -> Self {
        let ran: Vec<&CellResult> = results
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Skip(_)))
            .collect();
        let mut durations: Vec<u64> = ran.iter().map(|r| r.duration_ms).collect();
        let mut uv: Vec<u64> = ran.iter().map(|r| r.timing.uv_ms).collect();
        let mut overhead: Vec<f64> = ran
            .iter()
            .filter(|r| r.timing.uv_ms > 0)
            .map(|r| r.duration_ms.saturating_sub(r.timing.uv_ms) as f64 / r.timing.uv_ms as f64)
            .collect();
        overhead.sort_by(f64::total_cmp);
        Self {
            cells: ran.len(),
            warmed: ran.iter().filter(|r| r.timing.warm_ms.is_some()).count(),
            wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
            median_ms: quantile(&mut durations, 50),
            p95_ms: quantile(&mut durations, 95),
            uv_median_ms: quantile(&mut uv, 50),
            overhead_median: overhead.get(overhead.len() / 2).copied().unwrap_or(0.0),
            store_peak_bytes: None,
        }
    }

    /// Cells per second of wall clock.
    pub fn cells_per_second(&self) -> f64 {
        if self.wall_ms == 0 {
            return 0.0;
        }
        self.cells as f64 * 1000.0 / self.wall_ms as f64
    }

    /// Two lines for the terminal and the reports (three with the store's peak), each within
    /// the summary's 100 columns.
    pub fn line(&self) -> String {
        let store = self.store_peak_bytes.map_or(String::new(), |bytes| {
            format!(
                "\n  store of warm caches: peak {:.2} GB on disk (measured after each warm and \
                 copy); removed",
                bytes as f64 / 1e9
            )
        });
        format!(
            "cost: {} cells ({} warmed, the rest copies) in {:.1} s = {:.2} cells/s\n  \
             per cell median {:.2} s, p95 {:.2} s; uv's own run median {:.2} s; \
             overhead / uv time median {:.2}{store}",
            self.cells,
            self.warmed,
            self.wall_ms as f64 / 1000.0,
            self.cells_per_second(),
            self.median_ms as f64 / 1000.0,
            self.p95_ms as f64 / 1000.0,
            self.uv_median_ms as f64 / 1000.0,
            self.overhead_median
        )
    }
}

/// The `pct`-th percentile (nearest rank) of `values`; 0 for none.
fn quantile(values: &mut [u64], pct: usize) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = (values.len() * pct).div_ceil(100).max(1);
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::Timing;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=20).collect();
        assert_eq!(quantile(&mut v, 50), 10);
        assert_eq!(quantile(&mut v, 95), 19);
        assert_eq!(quantile(&mut [], 50), 0);
        assert_eq!(quantile(&mut [7], 95), 7);
    }

    #[test]
    fn skips_are_left_out_and_overhead_is_relative_to_uv() {
        let mut results = super::super::tests::sample();
        for (i, r) in results.iter_mut().enumerate() {
            r.duration_ms = 300;
            r.timing = Timing {
                warm_ms: (i == 0).then_some(50),
                uv_ms: 100,
            };
        }
        let skipped = results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Skip(_)))
            .count();
        assert!(skipped > 0, "the sample should hold a skip");
        let cost = Cost::of(&results, Duration::from_secs(2));
        assert_eq!(cost.cells, results.len() - skipped);
        assert_eq!(cost.median_ms, 300);
        assert_eq!(cost.uv_median_ms, 100);
        assert!((cost.overhead_median - 2.0).abs() < 1e-9);
        let measured = Cost {
            store_peak_bytes: Some(512_345_678),
            ..cost
        };
        // Without the store's peak (not measured) two lines, with it three.
        let lines = format!("{}\n---\n{}", cost.line(), measured.line());
        insta::assert_snapshot!(lines);
        for line in [cost.line(), measured.line()] {
            assert!(
                line.lines()
                    .all(|l| l.chars().count() <= super::super::summary::WIDTH),
                "{line}"
            );
        }
    }
}
