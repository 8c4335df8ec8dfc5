//! The JSON API the pages use: files (in flight and finished), one file, its reports, and the
//! two writes: an upload into a pipeline's inbox and a retry. A write sent by a form answers
//! with a redirect back to a page; one sent by a script or `curl` answers JSON.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use serde_json::json;

use super::auth::{Refused, Who};
use super::pages::HistoryQuery;
use super::reports::{self, Which};
use super::{view, Web};
use crate::ledger::HistoryEntry;
use crate::ops::inbox::{self, InboxError};

fn error(code: StatusCode, text: impl Into<String>) -> Response {
    (code, Json(json!({ "error": text.into() }))).into_response()
}

async fn entry(web: &Web, id: i64) -> Result<HistoryEntry, Response> {
    match web.ops.read(move |r| r.history_entry(id)).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, format!("no file {id} in the history"))),
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// `GET /api/files`: what is in flight, and the history (`pipeline`, `outcome`, `limit`).
pub async fn files(State(web): State<Web>, Query(q): Query<HistoryQuery>) -> Response {
    let filter = q.filter();
    match web.ops.read(move |r| r.history(&filter)).await {
        Ok(entries) => Json(json!({
            "in_flight": view::in_flight(),
            "files": entries.iter().map(view::entry_line).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/files/{id}`: the file's page as JSON.
pub async fn file(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    match entry(&web, id).await {
        Ok(e) => Json(view::detail(&web, &e).await).into_response(),
        Err(r) => r,
    }
}

async fn download(web: Web, id: i64, which: Which) -> Response {
    let e = match entry(&web, id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    match reports::open(&web, &e, which).await {
        Ok(Some((body, name))) => {
            let kind = if which == Which::Summary { "application/json" } else { "text/csv" };
            let safe: String = name.chars().filter(|c| c.is_ascii_graphic() && *c != '"').collect();
            let mut r = body.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Ok(None) => {
            error(StatusCode::NOT_FOUND, format!("{} has no {} report", e.file, which.key()))
        }
        Err(why) => error(StatusCode::NOT_FOUND, why),
    }
}

pub async fn errors_csv(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    download(web, id, Which::Errors).await
}

pub async fn warnings_csv(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    download(web, id, Which::Warnings).await
}

pub async fn summary_json(State(web): State<Web>, Path(id): Path<i64>) -> Response {
    download(web, id, Which::Summary).await
}

/// Whether a write came from a browser's form (answer with a redirect) rather than a
/// script or `curl` (answer JSON): a browser navigating asks for HTML.
fn from_form(headers: &HeaderMap) -> bool {
    let text = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok()).unwrap_or("");
    let form = text(header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded")
        || text(header::CONTENT_TYPE).starts_with("multipart/form-data");
    form && text(header::ACCEPT).contains("text/html")
}

/// A write's answer: JSON for a script, a redirect with a note for a form.
fn answer(
    headers: &HeaderMap,
    back: &str,
    result: Result<serde_json::Value, (StatusCode, String)>,
) -> Response {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    match (from_form(headers), result) {
        (true, Ok(v)) => {
            Redirect::to(&format!("{back}?done={}", enc(v["done"].as_str().unwrap_or("done"))))
                .into_response()
        }
        (true, Err((_, why))) => {
            Redirect::to(&format!("{back}?error={}", enc(&why))).into_response()
        }
        (false, Ok(v)) => (StatusCode::OK, Json(v)).into_response(),
        (false, Err((code, why))) => error(code, why),
    }
}

pub(super) fn inbox_error(e: InboxError) -> (StatusCode, String) {
    let code = match e {
        InboxError::Nothing(_) => StatusCode::CONFLICT,
        InboxError::Refused(_) => StatusCode::BAD_REQUEST,
        InboxError::Io(_) => StatusCode::BAD_GATEWAY,
    };
    (code, e.to_string())
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /api/files/{id}/retry`: the file back from `failed/` into its inbox.
pub async fn retry(
    State(web): State<Web>,
    Extension(who): Extension<Who>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let back = format!("/files/{id}");
    let csrf = form.ok().and_then(|f| f.0.csrf);
    if let Err(Refused(code, why)) = who.write(csrf.as_deref()) {
        return answer(&headers, &back, Err((code, why)));
    }
    let e = match entry(&web, id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let settings = web.ops.settings();
    let result = match inbox::pipeline(&settings, &e.pipeline) {
        Ok(p) => inbox::retry(&settings, p, &e.file).await.map_err(inbox_error),
        Err(err) => Err(inbox_error(err)),
    };
    let result = result.map(|to| {
        tracing::info!(pipeline = %e.pipeline, file = %e.file, to = %to, "retried from the console");
        json!({ "retried": e.file, "pipeline": e.pipeline, "into": to,
                "done": format!("{} is back in the inbox of {}", e.file, e.pipeline) })
    });
    answer(&headers, &back, result)
}

/// `POST /api/pipelines/{name}/files` (multipart, field `file`; a form also sends `csrf`
/// before it): the file, under its own name, into the pipeline's folder or bucket.
pub async fn upload(
    State(web): State<Web>,
    Extension(who): Extension<Who>,
    Path(name): Path<String>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let result = super::upload::receive(&web, &who, &name, multipart).await.map(|(file, to)| {
        tracing::info!(pipeline = %name, file = %file, to = %to, "uploaded from the console");
        json!({ "uploaded": file, "pipeline": name, "into": to,
                "done": format!("{file} is in the inbox of {name}; it shows below once it is picked up") })
    });
    answer(&headers, "/", result)
}
