//! The console at `/` (SPEC §13): server-rendered pages, no external assets, a little plain
//! JavaScript that polls `/api/files` for live progress. The pages and the JSON API read the
//! same views ([`view`]); uploads and retries go through [`super::inbox`], like `retry` does.
//! Everything here is behind [`auth::guard`].

mod api;
pub mod auth;
mod pages;
mod render;
mod reports;
mod rows;
mod upload;
mod view;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use super::server::OpsState;

/// The largest upload taken.
pub const MAX_UPLOAD: usize = 1 << 30;

/// The console's state: the operator endpoints' and the signed-in sessions.
#[derive(Clone)]
pub struct Web {
    pub ops: OpsState,
    pub sessions: Arc<auth::Sessions>,
}

impl FromRef<Web> for OpsState {
    fn from_ref(web: &Web) -> OpsState {
        web.ops.clone()
    }
}

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/history", get(pages::history))
        .route("/files/{id}", get(pages::file))
        .route("/login", get(pages::signed_in).post(auth::sign_in))
        .route("/logout", post(auth::sign_out))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/api/files", get(api::files))
        .route("/api/files/{id}", get(api::file))
        .route("/api/files/{id}/errors.csv", get(api::errors_csv))
        .route("/api/files/{id}/warnings.csv", get(api::warnings_csv))
        .route("/api/files/{id}/summary.json", get(api::summary_json))
        .route("/api/files/{id}/retry", post(api::retry))
        .route(
            "/api/pipelines/{name}/files",
            post(api::upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
}

/// Any other path (once signed in).
pub async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found\n")
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("assets/console.css"))
}

async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("assets/console.js"))
}
