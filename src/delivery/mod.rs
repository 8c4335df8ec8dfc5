//! What every CRM shares, once: connections (transport, credentials, rate and in-flight
//! limits, retries by what a call does, what the CRM's pace was learned to be), the engine
//! (write-ahead records, creates, steps, polling, splitting, reconciliation) and the window
//! of batches in flight. A CRM target is an [`Adapter`]: it describes its requests and reads
//! the answers.

pub mod adapter;
mod auth;
pub mod batcher;
pub mod call;
mod connection;
pub mod engine;
mod estimate;
mod hold;
mod pace;
pub mod reconcile;
pub mod retry;
mod signals;
#[cfg(test)]
mod tests;
pub mod transport;
pub mod window;

pub use adapter::{Adapter, Created, Fetched, JobReport, JobState, RowNote, RowRef, Step};
pub use call::{message_of, Call, CallError, Reply, Safety};
pub use connection::{Connection, ConnectionStats};
pub use engine::{Engine, Journal, Token};
pub use estimate::{PaceStore, Pacer};
pub use window::{Earlier, Settle, Window, WindowEnd};
