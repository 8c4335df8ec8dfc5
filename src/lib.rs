//! crm-ingest: CSV files dropped into a folder become records in Plannr and Repsly.
//!
//! # Layout
//! A file travels through these modules, in this order:
//! - [`source`] finds files (a watched folder), settles and claims them, and files them away
//!   into `processed/` or `failed/` when they are done.
//! - [`csvio`] streams a file's records (gzip, encoding and delimiter sniffing, start lines).
//! - [`mapping`] turns a source record into target fields: transforms, validators, schema.
//! - [`targets`] knows each CRM target: its field schema, how a row is encoded, and how a
//!   batch is delivered (the one small trait that hides CRM differences).
//! - [`delivery`] owns what every CRM shares: per-connection rate and in-flight limits,
//!   retries with backoff, and splitting a rejected batch to isolate a bad row.
//! - [`pipeline`] wires one file through all of the above and settles each row exactly once.
//! - [`report`] writes `NAME.errors.csv` and `NAME.summary.json` atomically.
//! - [`daemon`] runs every pipeline until shutdown; [`sandbox`] simulates both CRM APIs.
//! - [`ops`] serves the operator endpoints and the console, and raises alerts; [`notify`]
//!   delivers them from the ledger's outbox; [`health`] holds what makes the daemon not ready
//!   (a disk that refuses writes, a missing inbox), shared by the sources and the endpoints.
//!
//! [`config`] parses and validates the TOML file into [`config::Settings`]; [`cli`] maps the
//! subcommands onto all of this, so `main.rs` stays a few lines.

pub mod cli;
pub mod config;
pub mod csvio;
pub mod daemon;
pub mod delivery;
pub mod health;
pub mod ledger;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod pipeline;
pub mod report;
pub mod row;
pub mod sandbox;
pub mod schema;
pub mod secret;
pub mod source;
pub mod targets;
