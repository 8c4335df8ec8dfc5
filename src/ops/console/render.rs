//! The console's templates (minijinja, embedded at build time, HTML auto-escaped) and the
//! sign-in page.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Environment, Value};

use super::auth::Who;

const TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("templates/base.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("history.html", include_str!("templates/history.html")),
    ("file.html", include_str!("templates/file.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("message.html", include_str!("templates/message.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a console template does not parse");
            }
        }
        env.add_filter("count", |n: Option<u64>| {
            let n = n.unwrap_or(0).to_string();
            let mut out = String::new();
            for (i, c) in n.chars().enumerate() {
                if i > 0 && (n.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        });
        env.add_filter("when", when);
        env.add_filter("short", |text: Option<String>| {
            let text = text.unwrap_or_default();
            match text.char_indices().nth(SHORT) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        });
        env
    })
}

/// Longest text a table cell shows of a message (the file's page has all of it).
const SHORT: usize = 160;

/// `2026-03-01T09:30:12.345Z` as `2026-03-01 09:30:12 UTC`.
pub fn when(rfc3339: Option<String>) -> String {
    let t = rfc3339.unwrap_or_default();
    match (t.get(..10), t.get(11..19)) {
        (Some(day), Some(time)) if t.ends_with('Z') => format!("{day} {time} UTC"),
        _ => t,
    }
}

/// Renders `name` with `page` and what every page needs: who is asking, the version.
pub fn page(name: &str, who: &Who, page: Value) -> Response {
    let ctx = context! {
        page => page,
        csrf => who.csrf(),
        signed_in => who.signed_in(),
        may_write => who.may_write(),
        version => env!("CARGO_PKG_VERSION"),
    };
    match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "cannot render a console page");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered\n").into_response()
        }
    }
}

/// A short page saying what happened (not found, refused), with a way back.
pub fn message(status: StatusCode, who: &Who, title: &str, text: &str) -> Response {
    let mut r = page("message.html", who, context! { title => title, text => text });
    *r.status_mut() = status;
    r
}

/// The sign-in form: stands alone (its style inline, no script), so it needs nothing that
/// is behind the token.
pub fn sign_in_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let html = env()
        .get_template("sign_in.html")
        .and_then(|t| t.render(context! { next => next, error => error }))
        .unwrap_or_else(|_| "sign in: POST /login with field token".into());
    let mut r = (status, Html(html)).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_plainly() {
        assert_eq!(when(Some("2026-03-01T09:30:12.345Z".into())), "2026-03-01 09:30:12 UTC");
        assert_eq!(when(Some("odd".into())), "odd");
        assert_eq!(when(None), "");
    }

    #[test]
    fn every_template_parses_and_cells_are_escaped() {
        for (name, _) in TEMPLATES {
            assert!(env().get_template(name).is_ok(), "{name}");
        }
        let r = message(StatusCode::OK, &Who::Anyone, "t", "<script>alert(1)</script>");
        assert_eq!(r.status(), StatusCode::OK);
        let html = env()
            .get_template("message.html")
            .unwrap()
            .render(context! { page => context! { title => "t", text => "<b>x</b>" } })
            .unwrap();
        assert!(html.contains("&lt;b&gt;x") && !html.contains("<b>x</b>"), "{html}");
    }
}
