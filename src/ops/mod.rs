//! Operations: metrics, the status board, the operator endpoints and the console, alerts,
//! the inbox seen from outside (uploads, retries), systemd notify.

pub mod alerts;
pub mod console;
pub mod inbox;

pub mod server;
pub mod status;
pub mod systemd;
