//! Operations: metrics, the status board, the operator endpoints, systemd notify.

pub mod health;

pub mod server;
pub mod status;
pub mod systemd;
