//! The one integration-test binary (see matklad's "Delete Cargo Integration Tests"):
//! each concern is a module.

mod app_support;
mod kafka_support;
mod support;
mod tansu_support;

mod alerts_http;
mod browser;
mod chaos;
mod disk_faults;
mod engine;
mod engine_crash;
mod kafka;
mod kafka_crash;
mod kafka_fuzz;
mod kafka_tansu;
mod ops;

mod startup;
mod supervisor;
