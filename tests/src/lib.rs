//! Test helpers live in tests/api; this crate only hosts the test server binary.
