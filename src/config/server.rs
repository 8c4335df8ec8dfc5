//! `[server]`: where the operator endpoints and the console listen, and the console's token.

use super::raw::RawServer;
use super::settings::ServerSettings;
use super::validate::Ctx;

impl Ctx<'_> {
    pub(super) fn server(&mut self, raw: Option<&RawServer>) -> Option<ServerSettings> {
        let s = raw?;
        let listen = self.expand("listen", &s.listen);
        let token = match (&s.token, &s.token_file) {
            (None, None) => None,
            (inline, file) => self.secret("token", inline, file, s.listen.span()),
        };
        if token.as_ref().is_some_and(|t| t.expose().len() < 16 && !t.expose().contains("${")) {
            let span =
                s.token.as_ref().or(s.token_file.as_ref()).map_or(s.listen.span(), |t| t.span());
            self.problem(span, "[server] `token` must be at least 16 characters (it guards the console, uploads and retries)");
        }
        match listen.parse::<std::net::SocketAddr>() {
            Err(_) => self.problem(
                s.listen.span(),
                format!("`listen` = `{listen}` is not an address like 127.0.0.1:9464"),
            ),
            Ok(a) if !a.ip().is_loopback() && token.is_none() => self.warn(
                s.listen.span(),
                format!("[server] listen = {listen} is not a loopback address and no [server] token is set: the console, /status and /metrics name files and pipelines, and the console shows failed rows, to anyone who can reach it; set `token` (or `token_file`), bind 127.0.0.1, or put an authenticating proxy in front"),
            ),
            Ok(_) => {}
        }
        let public_url = match &s.public_url {
            Some(u) => {
                let url = self.expand("public_url", u);
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    self.problem(
                        u.span(),
                        "[server] `public_url` must start with http:// or https://",
                    );
                }
                url.trim_end_matches('/').to_string()
            }
            None => format!("http://{listen}"),
        };
        Some(ServerSettings { listen, token, public_url })
    }
}
