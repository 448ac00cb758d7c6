//! One test binary for the crate's integration tests: each is a module, so that the
//! workspace links one executable per crate rather than one per file.

mod lambda_sdk_config;
mod no_secret_in_logs;
