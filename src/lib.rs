//! Integration tests live in `tests/`; this crate only ships the sandbox helper binary.
