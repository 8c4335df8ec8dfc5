//! File storage on another origin, as a presigned URL: it serves the error reports Plannr
//! links to, and refuses a request that carries a second auth mechanism (an Authorization
//! header next to the signature), as S3 does.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{RequestLog, Sandbox};

pub fn router(sb: Sandbox) -> Router {
    Router::new().route("/files/{name}", get(file)).with_state(sb)
}

async fn file(State(sb): State<Sandbox>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let authorized = headers.contains_key("authorization");
    let Ok(mut state) = sb.state.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let at_ms = sb.started.elapsed().as_millis() as u64;
    let found = state.files.get(&name).cloned();
    let response = if authorized {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/xml")],
            "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified</Message></Error>",
        )
            .into_response()
    } else {
        match found {
            Some((mime, bytes)) => ([("content-type", mime)], bytes).into_response(),
            None => {
                (StatusCode::NOT_FOUND, "<Error><Code>NoSuchKey</Code></Error>").into_response()
            }
        }
    };
    let status = response.status().as_u16();
    state.requests.push(RequestLog {
        at_ms,
        method: "GET".into(),
        path: format!("/files/{name}"),
        status,
        authorized,
    });
    response
}
