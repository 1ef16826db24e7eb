//! tlsdiag
pub mod attempt;
pub mod capture;
pub mod certs;
pub mod config;
pub mod diagnose;
pub mod fingerprint;
pub mod hello;
pub mod profile;
pub mod report;
pub mod server;
pub mod store;
pub mod util;
pub mod web;
