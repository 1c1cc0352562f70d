//! The one integration-test binary (see matklad's "Delete Cargo Integration Tests"):
//! each concern is a module.

mod support;

mod engine;
mod engine_crash;
mod startup;
