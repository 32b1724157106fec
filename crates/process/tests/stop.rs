//! `stop_all` is process-wide, so it has a test binary of its own.

use std::process::Command;
use std::time::{Duration, Instant};

/// A running command (and its child, in its group) is killed; after that nothing new starts,
/// but `run_anyway` (the cleaning up) still does; every started group was reported.
#[cfg(unix)]
#[test]
fn stop_all_kills_running_groups_and_refuses_new_commands() {
    static SEEN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
    uvfix_process::on_spawn(|pgid| SEEN.lock().unwrap().push(pgid));
    let running = std::thread::spawn(|| {
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", "sleep 300 & sleep 300; echo done"]);
        uvfix_process::run(&mut sh, None)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while SEEN.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    assert_eq!(uvfix_process::stop_all(), 1);
    let out = running.join().unwrap().unwrap();
    assert_eq!(out.signal, Some(9), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(uvfix_process::stopping());

    let refused = uvfix_process::run(&mut Command::new("true"), None).unwrap_err();
    assert!(refused.to_string().contains("interrupted"), "{refused}");
    let anyway = uvfix_process::run_anyway(&mut Command::new("true"), None).unwrap();
    assert!(anyway.success());
    assert_eq!(
        SEEN.lock().unwrap().len(),
        2,
        "the refused command started nothing"
    );
}
