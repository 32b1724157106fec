//! A run of many cells keeps few warm caches on disk at once: each key's slot goes with its
//! last cell, so a run's store peaks near one key's warm tree per open key, not at the sum
//! over every key it ran (a CI machine once ran out of disk holding 81 of them).

use uvfix::sandbox_helper;
use uvfix_pipeline::builder::{Variant, uv_for_tests};
use uvfix_sandbox::Sandbox;
use uvfix_scenario::cell::UvUnderTest;
use uvfix_scenario::plan::{self, Filter};
use uvfix_scenario::pool::run_cells;
use uvfix_scenario::{Build, CacheState, ScenarioId};

#[test]
fn a_run_of_many_keys_holds_about_one_warm_cache_at_a_time() {
    let uv = UvUnderTest::new(Build::Patched, uv_for_tests(Variant::Patched).unwrap());
    let helper = sandbox_helper().unwrap();
    let states = vec![
        CacheState::Warm,
        CacheState::MarkerMissing,
        CacheState::LockMissing,
        CacheState::CachedirTagMissing,
    ];
    let cells = plan::cells(
        &[uv],
        &Filter {
            sandboxes: Some(vec![Sandbox::None]),
            scenarios: Some(vec![ScenarioId::S1]),
            states: Some(states),
        },
    );
    assert_eq!(cells.len(), 4, "one cell per key");
    let peak = |cells| {
        let (results, cost) = run_cells(cells, 1, &helper, false, None).unwrap();
        for result in &results {
            assert!(
                !result.outcome.is_fail(),
                "{}/{}: {:?}",
                result.scenario,
                result.state,
                result.outcome
            );
        }
        cost.store_peak_bytes
            .expect("the run warmed its keys in its store")
    };
    let one = peak(&cells[..1]);
    let four = peak(&cells[..]);
    // Holding every key's tree until the end would take about four times one key's.
    assert!(
        four < 2 * one,
        "four keys peaked at {four} bytes, one key alone at {one}"
    );
}
