//! Variables, nginx's `$name` model: the names sluice knows ([`Var`]) and a
//! string with variables compiled once, at config load, into literal and
//! variable parts ([`Template`]). An unknown name is a `file:line` error at
//! `-t` (nginx: `unknown "name" variable`), never literal text sent to
//! clients. Evaluation against a request is `http::vars`.
//!
//! Syntax: `$name` or `${name}`, a name being ASCII letters, digits and `_`;
//! a `$` not followed by a name is an error. Prefixed families take the rest
//! of the name: `$http_NAME` (request header, `_` for `-`), `$cookie_NAME`,
//! `$arg_NAME`, `$sent_http_NAME` (response header).

#![deny(missing_docs)]

/// A variable sluice can evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$host`: Host header (or absolute-form host), lowercase, no port;
    /// else the server's first name.
    Host,
    /// `$request_uri`: the target as received.
    RequestUri,
    /// `$uri`, `$document_uri`: the normalized (decoded) path.
    Uri,
    /// `$args`, `$query_string`: the query, raw.
    Args,
    /// `$is_args`: `?` when there is a query, else empty.
    IsArgs,
    /// `$request_method`.
    RequestMethod,
    /// `$request`: the request line (`GET / HTTP/1.1`).
    Request,
    /// `$server_protocol`: `HTTP/1.0` or `HTTP/1.1`.
    ServerProtocol,
    /// `$scheme`: `http` (or `https` on a TLS listener).
    Scheme,
    /// `$server_name`: the matched server's first name.
    ServerName,
    /// `$https`: `on` on a TLS connection, else empty.
    Https,
    /// `$http2`: `h2` (TLS) or `h2c` (cleartext) on HTTP/2, else empty.
    Http2,
    /// `$ssl_protocol`: `TLSv1.3`, `TLSv1.2` (empty without TLS).
    SslProtocol,
    /// `$ssl_cipher`: the suite's OpenSSL name.
    SslCipher,
    /// `$ssl_server_name`: the SNI name the client sent.
    SslServerName,
    /// `$ssl_client_verify`: `SUCCESS`, `FAILED:reason` or `NONE`.
    SslClientVerify,
    /// `$ssl_session_reused`: `r` for a resumed session, else `.`.
    SslSessionReused,
    /// `$ssl_client_s_dn`: the client certificate's subject, RFC 2253.
    SslClientSDn,
    /// `$ssl_client_fingerprint`: its SHA-1, hex.
    SslClientFingerprint,
    /// `$1`..`$9`: a regex location's captures (empty when unmatched).
    Capture(u8),
    /// A `map`'s variable (index into `HttpConf::maps`).
    Map(usize),
    /// `$server_addr`: the address that accepted the connection.
    ServerAddr,
    /// `$server_port`.
    ServerPort,
    /// `$remote_addr`.
    RemoteAddr,
    /// `$remote_port` (empty when the real-IP settings replaced the address).
    RemotePort,
    /// `$realip_remote_addr`: the connection's own address.
    RealipRemoteAddr,
    /// `$realip_remote_port`: the connection's own port.
    RealipRemotePort,
    /// `$remote_user`: the user name of Basic credentials.
    RemoteUser,
    /// `$binary_remote_addr`: 4 or 16 address bytes.
    BinaryRemoteAddr,
    /// `$request_time`: seconds since the request began, `1.234`.
    RequestTime,
    /// `$request_length`: bytes of the request head (and body so far).
    RequestLength,
    /// `$status`: the response status (`000` before it is known).
    Status,
    /// `$body_bytes_sent`.
    BodyBytesSent,
    /// `$bytes_sent`: head and body.
    BytesSent,
    /// `$time_local`: `03/Dec/2026:17:01:11 +0000`.
    TimeLocal,
    /// `$time_iso8601`: `2026-12-03T17:01:11+00:00`.
    TimeIso8601,
    /// `$msec`: Unix time in seconds with milliseconds, `1796317271.123`.
    Msec,
    /// `$request_id`: 32 hex digits, unique per request.
    RequestId,
    /// `$connection`: the connection's serial number.
    Connection,
    /// `$connection_requests`: requests on this connection, this one included.
    ConnectionRequests,
    /// `$upstream_addr`: the upstream server that answered.
    UpstreamAddr,
    /// `$upstream_status`.
    UpstreamStatus,
    /// `$upstream_response_time`: seconds, `0.012`.
    UpstreamResponseTime,
    /// `$upstream_cache_status`: `HIT`, `MISS`, `EXPIRED`, ...
    UpstreamCacheStatus,
    /// `$proxy_host`: the `proxy_pass` upstream's name (and port).
    ProxyHost,
    /// `$proxy_add_x_forwarded_for`: the client's `X-Forwarded-For` plus
    /// `, $remote_addr` (or `$remote_addr` alone).
    ProxyAddXForwardedFor,
    /// `$content_type`: the request's Content-Type.
    ContentType,
    /// `$content_length`: the request's Content-Length.
    ContentLength,
    /// `$pid`: the worker's process id.
    Pid,
    /// `$hostname`: the machine's host name.
    Hostname,
    /// `$http_NAME`: a request header; the name lowercase with `-` for `_`.
    Http(String),
    /// `$cookie_NAME`: a cookie of the request.
    Cookie(String),
    /// `$arg_NAME`: a query argument, raw.
    Arg(String),
    /// `$sent_http_NAME`: a header of the response; lowercase, `-` for `_`.
    SentHttp(String),
    /// An `auth_request_set` variable (index into the request's values).
    AuthSet(usize),
    /// `$upstream_http_NAME`: a header of the `auth_request` subrequest's
    /// upstream answer (known in `auth_request_set` only, for now).
    UpstreamHttp(String),
    /// `$request_filename`: the file path of `$uri` (`root` or `alias`).
    RequestFilename,
    /// A variable of `set` or a named regex capture: its index among the
    /// configuration's script variables, and its name (for warnings).
    Script(usize, String),
}

thread_local! {
    /// The `map` variables of the http block being read (a `$name` may be
    /// used before its `map`, as in nginx).
    static MAP_NAMES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// The `auth_request_set` variables of the http block being read.
    static AUTH_SET_NAMES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Compiling an `auth_request_set` value (`$upstream_http_NAME` known).
    static IN_AUTH_SET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with `names` known as `auth_request_set` variables.
pub(crate) fn with_auth_set_names<T>(names: Vec<String>, f: impl FnOnce() -> T) -> T {
    let old = AUTH_SET_NAMES.with(|m| std::mem::replace(&mut *m.borrow_mut(), names));
    let out = f();
    AUTH_SET_NAMES.with(|m| *m.borrow_mut() = old);
    out
}

/// How many `auth_request_set` variables the http block being read has.
pub(crate) fn auth_set_count() -> usize {
    AUTH_SET_NAMES.with(|m| m.borrow().len())
}

/// Compile `text` as an `auth_request_set` value.
pub(crate) fn compile_auth_set(text: &str) -> Result<Template, String> {
    IN_AUTH_SET.with(|c| c.set(true));
    let t = Template::compile(text);
    IN_AUTH_SET.with(|c| c.set(false));
    t
}

thread_local! {
    /// The `set` variables and named captures of the http block being read
    /// (known everywhere in it, as in nginx).
    static SCRIPT_NAMES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` with `names` known as script variables (`set`, named captures).
pub(crate) fn with_script_names<T>(names: Vec<String>, f: impl FnOnce() -> T) -> T {
    let old = SCRIPT_NAMES.with(|m| std::mem::replace(&mut *m.borrow_mut(), names));
    let out = f();
    SCRIPT_NAMES.with(|m| *m.borrow_mut() = old);
    out
}

/// The index of script variable `name` (lowercase), if the block has it.
pub(crate) fn script_index(name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    SCRIPT_NAMES.with(|m| m.borrow().iter().position(|n| *n == lower))
}

/// Run `f` with `names` known as `map` variables.
pub(crate) fn with_map_names<T>(names: Vec<String>, f: impl FnOnce() -> T) -> T {
    let old = MAP_NAMES.with(|m| std::mem::replace(&mut *m.borrow_mut(), names));
    let out = f();
    MAP_NAMES.with(|m| *m.borrow_mut() = old);
    out
}

impl Var {
    /// The variable called `name` (without `$`), if sluice knows it. Names
    /// are case-insensitive, as nginx's; a cookie's or argument's own name
    /// keeps its case (it is matched without case at evaluation).
    pub fn from_name(name: &str) -> Option<Var> {
        if let Some(v) = Var::builtin(name) {
            return Some(v);
        }
        let lower = name.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("upstream_http_") {
            if IN_AUTH_SET.with(|c| c.get()) && !rest.is_empty() {
                return Some(Var::UpstreamHttp(rest.replace('_', "-")));
            }
        }
        if let Some(i) = AUTH_SET_NAMES.with(|m| m.borrow().iter().position(|n| *n == lower)) {
            return Some(Var::AuthSet(i));
        }
        if let Some(m) = MAP_NAMES.with(|m| m.borrow().iter().position(|n| *n == lower)) {
            return Some(Var::Map(m));
        }
        script_index(&lower).map(|i| Var::Script(i, lower))
    }

    /// A variable sluice itself defines (not a `map`'s).
    pub fn builtin(name: &str) -> Option<Var> {
        let lower = name.to_ascii_lowercase();
        let header = |rest: &str| rest.replace('_', "-");
        let prefixed = [
            ("sent_http_", 0u8),
            ("http_", 1),
            ("cookie_", 2),
            ("arg_", 3),
        ];
        for (prefix, kind) in prefixed {
            if let Some(rest) = lower.strip_prefix(prefix).filter(|r| !r.is_empty()) {
                let own = &name[prefix.len()..];
                return Some(match kind {
                    0 => Var::SentHttp(header(rest)),
                    1 => Var::Http(header(rest)),
                    2 => Var::Cookie(own.to_string()),
                    _ => Var::Arg(own.to_string()),
                });
            }
        }
        if let [d @ b'1'..=b'9'] = lower.as_bytes() {
            return Some(Var::Capture(d - b'0'));
        }
        Some(match lower.as_str() {
            "host" => Var::Host,
            "request_uri" => Var::RequestUri,
            "uri" | "document_uri" => Var::Uri,
            "args" | "query_string" => Var::Args,
            "is_args" => Var::IsArgs,
            "request_method" => Var::RequestMethod,
            "request" => Var::Request,
            "server_protocol" => Var::ServerProtocol,
            "scheme" => Var::Scheme,
            "server_name" => Var::ServerName,
            "https" => Var::Https,
            "http2" => Var::Http2,
            "ssl_protocol" => Var::SslProtocol,
            "ssl_cipher" => Var::SslCipher,
            "ssl_server_name" => Var::SslServerName,
            "ssl_client_verify" => Var::SslClientVerify,
            "ssl_session_reused" => Var::SslSessionReused,
            "ssl_client_s_dn" => Var::SslClientSDn,
            "ssl_client_fingerprint" => Var::SslClientFingerprint,
            "server_addr" => Var::ServerAddr,
            "server_port" => Var::ServerPort,
            "remote_addr" => Var::RemoteAddr,
            "remote_port" => Var::RemotePort,
            "realip_remote_addr" => Var::RealipRemoteAddr,
            "realip_remote_port" => Var::RealipRemotePort,
            "remote_user" => Var::RemoteUser,
            "binary_remote_addr" => Var::BinaryRemoteAddr,
            "request_time" => Var::RequestTime,
            "request_length" => Var::RequestLength,
            "status" => Var::Status,
            "body_bytes_sent" => Var::BodyBytesSent,
            "bytes_sent" => Var::BytesSent,
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "msec" => Var::Msec,
            "request_id" => Var::RequestId,
            "connection" => Var::Connection,
            "connection_requests" => Var::ConnectionRequests,
            "upstream_addr" => Var::UpstreamAddr,
            "upstream_status" => Var::UpstreamStatus,
            "upstream_response_time" => Var::UpstreamResponseTime,
            "upstream_cache_status" => Var::UpstreamCacheStatus,
            "proxy_host" => Var::ProxyHost,
            "proxy_add_x_forwarded_for" => Var::ProxyAddXForwardedFor,
            "content_type" => Var::ContentType,
            "content_length" => Var::ContentLength,
            "pid" => Var::Pid,
            "hostname" => Var::Hostname,
            "request_filename" => Var::RequestFilename,
            _ => return None,
        })
    }
}

/// One piece of a compiled string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal bytes.
    Text(String),
    /// A variable's value.
    Var(Var),
}

/// A configured string with variables, compiled at load.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    /// The text as written in the config.
    pub source: String,
    /// Its parts, in order (adjacent literals merged).
    pub parts: Vec<Part>,
}

/// A template equals the text it was compiled from (tests, config diffs).
impl PartialEq<&str> for Template {
    fn eq(&self, other: &&str) -> bool {
        self.source == *other
    }
}

impl Template {
    /// Compile `source`. Err is the message for the directive's `file:line`:
    /// `unknown "name" variable` or `invalid variable name in "..."`.
    pub fn compile(source: &str) -> Result<Template, String> {
        let mut parts: Vec<Part> = Vec::new();
        let mut text = String::new();
        let b = source.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                let next = source[i..].find('$').map_or(b.len(), |n| i + n);
                text.push_str(&source[i..next]);
                i = next;
                continue;
            }
            let braced = b.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                end += 1;
            }
            if end == start || (braced && b.get(end) != Some(&b'}')) {
                return Err(format!("invalid variable name in \"{source}\""));
            }
            let name = &source[start..end];
            let var = Var::from_name(name).ok_or_else(|| format!("unknown \"{name}\" variable"))?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Var(var));
            i = end + usize::from(braced);
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The text when it has no variables (the common, free case).
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Whether any part is `var`.
    pub fn uses(&self, var: &Var) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == var))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_literals_variables_and_braces() {
        let t = Template::compile("https://$server_name${request_uri}x").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("https://".into()),
                Part::Var(Var::ServerName),
                Part::Var(Var::RequestUri),
                Part::Text("x".into()),
            ]
        );
        assert_eq!(t.source, "https://$server_name${request_uri}x");
        assert_eq!(Template::compile("plain").unwrap().literal(), Some("plain"));
        assert_eq!(Template::compile("").unwrap().literal(), Some(""));
        assert_eq!(Template::compile("a$host").unwrap().literal(), None);
    }

    #[test]
    fn prefixed_families_normalize_names() {
        let t = Template::compile(
            "$http_X_Forwarded_For $cookie_Sid $arg_Page $sent_http_content_type",
        )
        .unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Var(Var::Http("x-forwarded-for".into())),
                Part::Text(" ".into()),
                Part::Var(Var::Cookie("Sid".into())),
                Part::Text(" ".into()),
                Part::Var(Var::Arg("Page".into())),
                Part::Text(" ".into()),
                Part::Var(Var::SentHttp("content-type".into())),
            ]
        );
    }

    #[test]
    fn every_variable_the_issue_names_is_known() {
        for name in [
            "host",
            "http_user_agent",
            "cookie_a",
            "arg_a",
            "args",
            "query_string",
            "uri",
            "document_uri",
            "request_uri",
            "request_method",
            "scheme",
            "https",
            "ssl_protocol",
            "ssl_cipher",
            "ssl_server_name",
            "ssl_client_verify",
            "ssl_session_reused",
            "ssl_client_s_dn",
            "ssl_client_fingerprint",
            "server_name",
            "server_port",
            "server_addr",
            "remote_addr",
            "remote_port",
            "binary_remote_addr",
            "request_time",
            "request_length",
            "status",
            "body_bytes_sent",
            "bytes_sent",
            "time_local",
            "time_iso8601",
            "msec",
            "request_id",
            "connection",
            "connection_requests",
            "upstream_addr",
            "upstream_status",
            "upstream_response_time",
            "upstream_cache_status",
            "http_x_forwarded_for",
            "proxy_add_x_forwarded_for",
            "sent_http_etag",
            "content_type",
            "content_length",
            "pid",
            "hostname",
        ] {
            assert!(Var::from_name(name).is_some(), "${name}");
        }
    }

    #[test]
    fn unknown_variable_is_an_error_not_literal_text() {
        // Regression: `return 301 https://$server_nam$request_uri` was
        // accepted and sent `$server_nam` to clients.
        assert_eq!(
            Template::compile("https://$server_nam$request_uri"),
            Err("unknown \"server_nam\" variable".to_string())
        );
        assert_eq!(
            Template::compile("$no_such_var"),
            Err("unknown \"no_such_var\" variable".to_string())
        );
        for bad in ["a$", "$ x", "${host", "${}", "$-"] {
            assert!(
                Template::compile(bad)
                    .unwrap_err()
                    .starts_with("invalid variable name"),
                "{bad}"
            );
        }
        // A bare prefix is not a family member.
        assert!(Template::compile("$http_").is_err());
    }

    #[test]
    fn names_are_case_insensitive_as_nginx() {
        let t =
            Template::compile("$Binary_Remote_Addr$HOST$HTTP_X_User$Cookie_Sid$ARG_Page").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Var(Var::BinaryRemoteAddr),
                Part::Var(Var::Host),
                Part::Var(Var::Http("x-user".into())),
                Part::Var(Var::Cookie("Sid".into())),
                Part::Var(Var::Arg("Page".into())),
            ]
        );
    }
}
