//! SIGINT, SIGTERM and SIGHUP end a run cleanly: the cells' commands are killed, containers
//! removed, nothing new starts, and the run unwinds through its normal cleanup, which undoes
//! the preparations and removes the store. Then the process exits with 128 + the signal.
//!
//! Why a thread and a flag rather than exiting in the handler: the cells undo their own
//! preparations as they unwind (`chattr -i`, ownership), and a worker may be half-way through
//! one; removing the store under its feet would race it. So the handler only stops things,
//! and the run's own code, seeing [`interrupted`], stops taking cells and closes its store.
//! If no store is open there is nothing to undo and the handler exits at once.

use std::sync::Once;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// How long the run gets to unwind after a signal before the handler gives up waiting and
/// exits (what is left then is the next run's to clean: its lock dies with this process).
const UNWIND_LIMIT: Duration = Duration::from_secs(180);

/// The run was stopped by a signal.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted by {}: the running cells were stopped and what they prepared undone", name(*.0))]
pub struct Interrupted(pub i32);

impl Interrupted {
    /// 128 + the signal, as a shell reports a process killed by it.
    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.0).unwrap_or(1)
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Handle SIGINT, SIGTERM and SIGHUP from now on (once per process).
pub fn install() -> std::io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(
        || match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    for signal in signals.forever() {
                        on_signal(signal);
                    }
                });
            }
            Err(e) => result = Err(e),
        },
    );
    result
}

fn on_signal(signal: i32) {
    if SIGNAL.swap(signal, Ordering::SeqCst) != 0 {
        eprintln!(
            "uvfix: {}: still cleaning up after the interruption (SIGKILL abandons that; the \
             next run cleans up then)",
            name(signal)
        );
        return;
    }
    let stopped = uvfix_process::stop_all();
    eprintln!(
        "uvfix: interrupted by {}: stopped {stopped} running command(s); undoing what the \
         cells prepared and removing the run's store",
        name(signal)
    );
    if let Some(store) = crate::journal::attached()
        && crate::journal::read(&store).contains(&crate::Entry::Docker)
        && let Err(e) = crate::store::remove_containers(&store)
    {
        eprintln!("uvfix: {e}");
    }
    if crate::store::OPEN.load(Ordering::SeqCst) == 0 {
        std::process::exit(128 + signal);
    }
    std::thread::spawn(move || {
        std::thread::sleep(UNWIND_LIMIT);
        eprintln!(
            "uvfix: the run did not unwind within {} s of the interruption; exiting (the next \
             run cleans up what is left)",
            UNWIND_LIMIT.as_secs()
        );
        std::process::exit(128 + signal);
    });
}

/// The signal that interrupted this run, if one did.
pub fn interrupted() -> Option<Interrupted> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(Interrupted(signal)),
    }
}

/// `Err` once the run was interrupted: where a run is about to start more work.
pub fn check() -> Result<(), Interrupted> {
    interrupted().map_or(Ok(()), Err)
}
