//! What every CRM shares: connections (rate limit, in-flight limit, retries) and the batch
//! driver that isolates bad rows.

mod connection;
pub mod driver;
pub mod retry;

pub use connection::{message_of, CallError, Connection, ConnectionStats, Reply};
