//! Operations: metrics, the status board, the operator endpoints, systemd notify.

pub mod alerts;
pub mod health;
pub mod inbox;

pub mod server;
pub mod status;
pub mod systemd;
