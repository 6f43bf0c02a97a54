//! Evaluating compiled variables (`config::Template`) for one request: the
//! request side ([`ReqVars`], known from the head on) and the response side
//! ([`RespVars`], known in the header filter and the log phase). Values are
//! appended to a caller's buffer; nothing is allocated per evaluation. A
//! value not known at that point (no upstream, no such header) is empty, as
//! in nginx.

use crate::config::{Part, Template, Var};
use crate::http::request::{at, find_header, header_fields, Head};
use crate::http::response::put_u64;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

/// What the connection contributes.
#[derive(Debug, Clone, Copy)]
pub struct ConnVars {
    /// `$connection`: the connection's serial number in this worker.
    pub serial: u64,
    /// `$connection_requests`: requests on it, this one included.
    pub requests: u64,
    /// The client's address and port.
    pub peer: SocketAddr,
    /// The address that accepted the connection.
    pub local: Option<SocketAddr>,
    /// The connection speaks TLS (`$scheme` https, `$https` on).
    pub https: bool,
    /// The connection's own address when the real-IP settings replaced
    /// `peer` (`$realip_remote_addr`).
    pub realip_peer: Option<SocketAddr>,
}

/// What the rewrite phase leaves for one request (the request's, reused:
/// no allocation once warm; untouched where no rewrite op is configured).
#[derive(Debug, Default, Clone)]
pub struct ScriptVars {
    /// Values of the `set` variables and named captures, by index.
    pub values: Vec<Vec<u8>>,
    /// Which of `values` this request set.
    pub is_set: Vec<bool>,
    /// The string the last `rewrite` or `if` regex matched.
    pub subject: Vec<u8>,
    /// Its captures, spans of `subject` (`$1`..`$9`).
    pub captures: Vec<(u32, u32)>,
    /// A rewrite-phase regex matched: `$1`..`$9` are its captures, not
    /// the location's.
    pub has_captures: bool,
    /// `$uri` after the rewrites.
    pub uri: Vec<u8>,
    /// `$args` after the rewrites.
    pub args: Vec<u8>,
    /// The request has arguments (`$is_args`).
    pub has_args: bool,
    /// A `rewrite` changed the URI: the upstream gets `$uri`, not the
    /// client's target.
    pub uri_changed: bool,
    /// `uninitialized_variable_warn` of the location.
    pub uninit_warn: bool,
    /// A redirect's `Location`.
    pub location: Vec<u8>,
}

/// No script variables (requests in places without rewrite ops).
pub static NO_SCRIPT: ScriptVars = ScriptVars::new();

impl ScriptVars {
    /// Empty.
    pub const fn new() -> ScriptVars {
        ScriptVars {
            values: Vec::new(),
            is_set: Vec::new(),
            subject: Vec::new(),
            captures: Vec::new(),
            has_captures: false,
            uri: Vec::new(),
            args: Vec::new(),
            has_args: false,
            uri_changed: false,
            uninit_warn: false,
            location: Vec::new(),
        }
    }

    /// Start a request at `path?query` (buffers kept).
    pub fn begin(&mut self, path: &[u8], query: Option<&[u8]>) {
        self.is_set.clear();
        self.captures.clear();
        self.has_captures = false;
        self.uri.clear();
        self.uri.extend_from_slice(path);
        self.args.clear();
        self.args.extend_from_slice(query.unwrap_or(b""));
        self.has_args = query.is_some();
        self.uri_changed = false;
        self.location.clear();
    }

    /// Give variable `i` the value `v`.
    pub fn set(&mut self, i: usize, v: &[u8]) {
        if self.values.len() <= i {
            self.values.resize_with(i + 1, Vec::new);
        }
        if self.is_set.len() <= i {
            self.is_set.resize(i + 1, false);
        }
        self.values[i].clear();
        self.values[i].extend_from_slice(v);
        self.is_set[i] = true;
    }

    /// The value of variable `i`, if this request set it.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        match self.is_set.get(i) {
            Some(true) => self.values.get(i).map(Vec::as_slice),
            _ => None,
        }
    }
}

/// The request side of the variables.
#[derive(Clone, Copy)]
pub struct ReqVars<'a> {
    /// The request head, raw (`head`'s spans index it).
    pub head_bytes: &'a [u8],
    /// Its parse.
    pub head: &'a Head,
    /// `$request_uri`: the target as sent (the cache puts another target of
    /// the same origin here to find its key).
    pub target: &'a [u8],
    /// `$uri`: the normalized path.
    pub path: &'a [u8],
    /// `$args`.
    pub query: Option<&'a [u8]>,
    /// Host header or absolute-form host, as sent.
    pub host: Option<&'a [u8]>,
    /// The connection.
    pub conn: ConnVars,
    /// `$server_name`: the matched server's first name.
    pub server_name: &'a str,
    /// `$proxy_host` (empty outside a proxied location).
    pub proxy_host: &'a str,
    /// When the request began, Unix ms.
    pub started_unix_ms: u64,
    /// Now, Unix ms.
    pub now_unix_ms: u64,
    /// The waiting room's `Set-Cookie` for this response (empty: none).
    pub set_cookie: &'a [u8],
    /// The connection's TLS, if it speaks TLS (`$ssl_*`).
    pub tls: Option<&'a crate::tls::TlsInfo>,
    /// The regex location's captures, spans of `path` (`$1`..`$9`).
    pub captures: &'a [(u32, u32)],
    /// The configuration's `map`s.
    pub maps: &'a [crate::config::MapConf],
    /// The `auth_request_set` variables' values (by index; empty: none set).
    pub auth_vars: &'a [Vec<u8>],
    /// What the rewrite phase set ([`NO_SCRIPT`] where it did not run).
    pub script: &'a ScriptVars,
    /// The location serving the request (`$request_filename`).
    pub loc: Option<&'a crate::config::LocationConf>,
}

/// The response side of the variables.
#[derive(Default, Clone, Copy)]
pub struct RespVars<'a> {
    /// `$status` (0 = not yet known: `000`).
    pub status: u16,
    /// `$body_bytes_sent`.
    pub body_bytes: u64,
    /// `$bytes_sent`.
    pub bytes: u64,
    /// The response head so far, for `$sent_http_NAME` (empty: none yet).
    pub head: &'a [u8],
    /// `$upstream_addr`.
    pub upstream_addr: Option<&'a crate::config::PeerAddr>,
    /// `$upstream_status` (0 = none).
    pub upstream_status: u16,
    /// `$upstream_response_time` in ms.
    pub upstream_ms: Option<u64>,
    /// `$upstream_cache_status`.
    pub cache_status: Option<&'a str>,
    /// The upstream's response head, for `$upstream_http_NAME` (the
    /// `auth_request` subrequest's, in `auth_request_set`).
    pub upstream_head: &'a [u8],
}

thread_local! {
    /// How many `map` evaluations are in progress (a guard against maps
    /// whose values name each other).
    static MAP_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Deepest chain of maps evaluated through each other.
const MAX_MAP_DEPTH: u32 = 8;

/// Append `t` evaluated for this request and response to `out`.
pub fn eval(t: &Template, req: &ReqVars<'_>, resp: &RespVars<'_>, out: &mut Vec<u8>) {
    for p in &t.parts {
        match p {
            Part::Text(s) => out.extend_from_slice(s.as_bytes()),
            Part::Var(v) => eval_var(v, req, resp, out),
        }
    }
}

/// Whether `t` evaluates to something other than empty or `0` (nginx's
/// rule for `proxy_cache_bypass` and `proxy_no_cache`); `scratch` is reused.
pub fn is_true(t: &Template, req: &ReqVars<'_>, scratch: &mut Vec<u8>) -> bool {
    scratch.clear();
    eval(t, req, &RespVars::default(), scratch);
    !scratch.is_empty() && scratch.as_slice() != b"0"
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    let _ = write!(out, "{ip}");
}

/// `ms` as seconds with three decimals (`1.234`).
fn put_secs(out: &mut Vec<u8>, ms: u64) {
    crate::util::units::put_secs_from_ms(ms, out);
}

/// `$host`'s rule: the host without port, lowercase.
fn put_host(out: &mut Vec<u8>, h: &[u8]) {
    let h = match h.iter().rposition(|&x| x == b':') {
        Some(p) if !h.ends_with(b"]") => &h[..p],
        _ => h,
    };
    out.extend(h.iter().map(u8::to_ascii_lowercase));
}

/// The value of cookie `name` in a `Cookie` header; the name matches in
/// any case, as nginx's `$cookie_NAME`.
pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&x| x == b';').find_map(|kv| {
        let kv = kv.trim_ascii();
        let eq = kv.iter().position(|&x| x == b'=')?;
        kv[..eq]
            .eq_ignore_ascii_case(name)
            .then(|| kv[eq + 1..].trim_ascii())
    })
}

/// The raw value of argument `name` in a query (`a=1&b`: `b` is empty);
/// the name matches in any case, as nginx's `$arg_NAME`.
pub fn arg<'a>(query: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    query.split(|&x| x == b'&').find_map(|kv| {
        let eq = kv.iter().position(|&x| x == b'=').unwrap_or(kv.len());
        kv[..eq]
            .eq_ignore_ascii_case(name)
            .then(|| kv.get(eq + 1..).unwrap_or(b""))
    })
}

fn request_id(req: &ReqVars<'_>, out: &mut Vec<u8>) {
    static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let seed = SEED.get_or_init(std::collections::hash_map::RandomState::new);
    let mut halves = [0u64; 2];
    for (i, h) in halves.iter_mut().enumerate() {
        let mut s = seed.build_hasher();
        s.write_u64(i as u64);
        s.write_u32(std::process::id());
        s.write_u64(req.conn.serial);
        s.write_u64(req.conn.requests);
        s.write_u64(req.started_unix_ms);
        *h = s.finish();
    }
    let _ = write!(out, "{:016x}{:016x}", halves[0], halves[1]);
}

fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// Append the value of `v` to `out` (what [`eval`] does for each variable;
/// the limits phase uses it for the parts its keys do not treat themselves).
pub fn eval_var(v: &Var, req: &ReqVars<'_>, resp: &RespVars<'_>, out: &mut Vec<u8>) {
    let hb = req.head_bytes;
    let head = req.head;
    match v {
        Var::Host => match req.host {
            Some(h) => put_host(out, h),
            None => out.extend_from_slice(req.server_name.as_bytes()),
        },
        Var::RequestUri => out.extend_from_slice(req.target),
        Var::Uri => out.extend_from_slice(req.path),
        Var::Args => out.extend_from_slice(req.query.unwrap_or(b"")),
        Var::IsArgs => {
            if req.query.is_some() {
                out.push(b'?');
            }
        }
        Var::RequestMethod => out.extend_from_slice(at(hb, head.method_span)),
        Var::Request => {
            out.extend_from_slice(at(hb, head.method_span));
            out.push(b' ');
            out.extend_from_slice(req.target);
            out.push(b' ');
            eval_var(&Var::ServerProtocol, req, resp, out);
        }
        Var::ServerProtocol => out.extend_from_slice(if head.h2 {
            b"HTTP/2.0"
        } else if head.version_minor == 0 {
            b"HTTP/1.0"
        } else {
            b"HTTP/1.1"
        }),
        Var::Scheme => out.extend_from_slice(if req.conn.https { b"https" } else { b"http" }),
        Var::Https => {
            if req.conn.https {
                out.extend_from_slice(b"on");
            }
        }
        Var::Http2 => {
            if head.h2 {
                out.extend_from_slice(if req.conn.https { b"h2" } else { b"h2c" });
            }
        }
        Var::SslProtocol => out.extend_from_slice(req.tls.map_or("", |t| t.protocol).as_bytes()),
        Var::SslCipher => out.extend_from_slice(req.tls.map_or("", |t| t.cipher).as_bytes()),
        Var::Map(i) => {
            let Some(m) = req.maps.get(*i) else {
                return;
            };
            // A map whose values lead back to itself ends empty, not in a loop.
            let depth = MAP_DEPTH.with(|d| d.replace(d.get() + 1));
            if depth < MAX_MAP_DEPTH {
                let mut source = Vec::new();
                eval(&m.source, req, resp, &mut source);
                if let Some(v) = m.lookup(&source) {
                    eval(&m.values[v], req, resp, out);
                }
            }
            MAP_DEPTH.with(|d| d.set(depth));
        }
        Var::Capture(n) => {
            let (subject, caps) = if req.script.has_captures {
                (&req.script.subject[..], &req.script.captures[..])
            } else {
                (req.path, req.captures)
            };
            if let Some(&(s, e)) = caps.get(usize::from(*n)) {
                if let Some(v) = subject.get(s as usize..e as usize) {
                    out.extend_from_slice(v);
                }
            }
        }
        Var::Script(i, name) => match req.script.get(*i) {
            Some(v) => out.extend_from_slice(v),
            None => {
                if req.script.uninit_warn {
                    log::warn!(
                        "using uninitialized \"{name}\" variable, client: {}",
                        req.conn.peer.ip()
                    );
                }
            }
        },
        Var::RequestFilename => {
            if let Some(loc) = req.loc {
                request_filename(loc, req, out);
            }
        }
        Var::SslClientVerify => {
            if let Some(t) = req.tls {
                out.extend_from_slice(t.client_verify.as_text().as_bytes());
            }
        }
        Var::SslSessionReused => {
            if let Some(t) = req.tls {
                out.push(if t.session_reused { b'r' } else { b'.' });
            }
        }
        Var::SslClientSDn => {
            if let Some(c) = req.tls.and_then(|t| t.client_cert.as_deref()) {
                let dn = crate::tls::cert_info::subject_dn(c).unwrap_or_default();
                out.extend_from_slice(dn.as_bytes());
            }
        }
        Var::SslClientFingerprint => {
            if let Some(c) = req.tls.and_then(|t| t.client_cert.as_deref()) {
                out.extend_from_slice(crate::tls::cert_info::fingerprint(c).as_bytes());
            }
        }
        Var::SslServerName => {
            let name = req.tls.and_then(|t| t.server_name.as_deref());
            out.extend_from_slice(name.unwrap_or("").as_bytes())
        }
        Var::ServerName => out.extend_from_slice(req.server_name.as_bytes()),
        Var::ServerAddr => {
            if let Some(l) = req.conn.local {
                put_ip(out, l.ip());
            }
        }
        Var::ServerPort => {
            if let Some(l) = req.conn.local {
                put_u64(out, u64::from(l.port()));
            }
        }
        Var::RemoteAddr => put_ip(out, req.conn.peer.ip()),
        Var::RemotePort => {
            if req.conn.peer.port() != 0 {
                put_u64(out, u64::from(req.conn.peer.port()))
            }
        }
        Var::RealipRemoteAddr => put_ip(out, req.conn.realip_peer.unwrap_or(req.conn.peer).ip()),
        Var::RealipRemotePort => put_u64(
            out,
            u64::from(req.conn.realip_peer.unwrap_or(req.conn.peer).port()),
        ),
        Var::RemoteUser => {
            let auth = find_header(&hb[..head.len], b"authorization");
            if let Some(user) = auth.and_then(crate::http::auth_basic::basic_credentials) {
                out.extend_from_slice(&user.0);
            }
        }
        Var::BinaryRemoteAddr => match req.conn.peer.ip() {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        },
        Var::RequestTime => put_secs(out, req.now_unix_ms.saturating_sub(req.started_unix_ms)),
        Var::RequestLength => put_u64(out, head.len as u64),
        Var::Status => {
            if resp.status == 0 {
                out.extend_from_slice(b"000");
            } else {
                put_u64(out, u64::from(resp.status));
            }
        }
        Var::BodyBytesSent => put_u64(out, resp.body_bytes),
        Var::BytesSent => put_u64(out, resp.bytes),
        Var::TimeLocal => {
            let mut b = [0u8; 26];
            crate::util::httpdate::format_log_time((req.now_unix_ms / 1000) as i64, &mut b);
            out.extend_from_slice(&b);
        }
        Var::TimeIso8601 => {
            let mut b = [0u8; 25];
            crate::util::httpdate::format_iso8601((req.now_unix_ms / 1000) as i64, &mut b);
            out.extend_from_slice(&b);
        }
        Var::Msec => put_secs(out, req.now_unix_ms),
        Var::RequestId => request_id(req, out),
        Var::Connection => put_u64(out, req.conn.serial),
        Var::ConnectionRequests => put_u64(out, req.conn.requests),
        Var::UpstreamAddr => {
            if let Some(a) = resp.upstream_addr {
                let _ = write!(out, "{a}");
            }
        }
        Var::UpstreamStatus => {
            if resp.upstream_status != 0 {
                put_u64(out, u64::from(resp.upstream_status));
            }
        }
        Var::UpstreamResponseTime => {
            if let Some(ms) = resp.upstream_ms {
                put_secs(out, ms);
            }
        }
        Var::UpstreamCacheStatus => {
            out.extend_from_slice(resp.cache_status.unwrap_or("").as_bytes())
        }
        Var::ProxyHost => out.extend_from_slice(req.proxy_host.as_bytes()),
        Var::ProxyAddXForwardedFor => {
            if let Some(x) = find_header(&hb[..head.len], b"x-forwarded-for") {
                out.extend_from_slice(x);
                out.extend_from_slice(b", ");
            }
            put_ip(out, req.conn.peer.ip());
        }
        Var::ContentType => {
            out.extend_from_slice(find_header(&hb[..head.len], b"content-type").unwrap_or(b""))
        }
        Var::ContentLength => {
            out.extend_from_slice(find_header(&hb[..head.len], b"content-length").unwrap_or(b""))
        }
        Var::Pid => put_u64(out, u64::from(std::process::id())),
        Var::Hostname => out.extend_from_slice(hostname().as_bytes()),
        Var::Http(name) => {
            let v = find_header(&hb[..head.len], name.as_bytes());
            out.extend_from_slice(v.unwrap_or(b""))
        }
        Var::Cookie(name) => {
            // Every Cookie line is searched, as nginx.
            let v = header_fields(&hb[..head.len])
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
                .find_map(|(_, c)| cookie(c, name.as_bytes()));
            out.extend_from_slice(v.unwrap_or(b""))
        }
        Var::Arg(name) => {
            let v = req.query.and_then(|q| arg(q, name.as_bytes()));
            out.extend_from_slice(v.unwrap_or(b""))
        }
        Var::AuthSet(i) => out.extend_from_slice(req.auth_vars.get(*i).map_or(&[][..], |v| v)),
        Var::UpstreamHttp(name) => {
            let v = find_header(resp.upstream_head, name.as_bytes());
            out.extend_from_slice(v.unwrap_or(b""));
        }
        Var::SentHttp(name) => {
            if !resp.head.is_empty() {
                let v = header_fields(resp.head)
                    .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v);
                out.extend_from_slice(v.unwrap_or(b""));
            }
        }
    }
}

/// Append the file system path of `rv.path` in `loc` (`root`, or `alias`)
/// to `out`: `$request_filename`, and what the static handler opens.
pub fn request_filename(loc: &crate::config::LocationConf, rv: &ReqVars<'_>, out: &mut Vec<u8>) {
    use std::os::unix::ffi::OsStrExt;
    match &loc.alias {
        // In a prefix location a literal alias replaces the prefix; in an
        // exact or regex location (with captures) it is the whole path.
        Some(a) => {
            eval(a, rv, &RespVars::default(), out);
            use crate::config::LocationMatch::{Prefix, PrefixNoRegex};
            if a.literal().is_some() && matches!(loc.match_kind, Prefix | PrefixNoRegex) {
                let prefix = loc.path.len().min(rv.path.len());
                out.extend_from_slice(&rv.path[prefix..]);
            }
        }
        None => {
            let start = out.len();
            out.extend_from_slice(loc.root.as_os_str().as_bytes());
            if out.len() > start && out.last() == Some(&b'/') {
                out.pop();
            }
            out.extend_from_slice(rv.path);
        }
    }
}

/// `f` with the variables of the request head `raw` (unit tests): path
/// `/a b`, query `x=1&page=7&flag`, client 10.0.0.7:5555, server
/// `example.com` on 127.0.0.1:8080, proxy host `app`.
#[cfg(test)]
pub(crate) fn with_req(raw: &str, f: impl FnOnce(&ReqVars<'_>)) {
    let head = crate::http::request::parse_for_test(raw.as_bytes());
    let host = head.host.map(|h| at(raw.as_bytes(), h));
    let req = ReqVars {
        head_bytes: raw.as_bytes(),
        head: &head,
        target: at(raw.as_bytes(), head.target),
        path: b"/a b",
        query: Some(b"x=1&page=7&flag"),
        host,
        conn: ConnVars {
            serial: 42,
            requests: 3,
            peer: "10.0.0.7:5555".parse().unwrap(),
            local: Some("127.0.0.1:8080".parse().unwrap()),
            https: false,
            realip_peer: None,
        },
        server_name: "example.com",
        proxy_host: "app",
        started_unix_ms: 1_796_317_271_000,
        now_unix_ms: 1_796_317_271_250,
        set_cookie: b"",
        tls: None,
        captures: &[(0, 2), (1, 2)],
        maps: &[],
        auth_vars: &[],
        script: &NO_SCRIPT,
        loc: None,
    };
    f(&req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: &str, req: &ReqVars<'_>, resp: &RespVars<'_>) -> String {
        let t = Template::compile(text).unwrap();
        let mut out = Vec::new();
        eval(&t, req, resp, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn regex_captures_are_numbered_variables() {
        // with_req's location matched "/a b" with captures (0,2) and (1,2).
        with_req("GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n", |r| {
            assert_eq!(ev("[$1][$2][$9]", r, &RespVars::default()), "[a][][]");
        });
    }

    #[test]
    fn request_variables() {
        let raw = "GET /a%20b?x=1&page=7&flag HTTP/1.1\r\nHost: Example.COM:8080\r\nCookie: a=1; sid=xyz\r\nX-Forwarded-For: 1.2.3.4\r\nUser-Agent: ua\r\nContent-Type: text/plain\r\n\r\n";
        with_req(raw, |r| {
            let none = RespVars::default();
            assert_eq!(
                ev("$host|$request_uri|$uri|$args|$is_args", r, &none),
                "example.com|/a%20b?x=1&page=7&flag|/a b|x=1&page=7&flag|?"
            );
            assert_eq!(
                ev("$request_method $request|$server_protocol", r, &none),
                "GET GET /a%20b?x=1&page=7&flag HTTP/1.1|HTTP/1.1"
            );
            assert_eq!(
                ev("$scheme://$server_name:$server_port $server_addr", r, &none),
                "http://example.com:8080 127.0.0.1"
            );
            assert_eq!(ev("$remote_addr:$remote_port", r, &none), "10.0.0.7:5555");
            assert_eq!(
                ev(
                    "$http_user_agent|$cookie_sid|$arg_page|$arg_flag|$arg_none",
                    r,
                    &none
                ),
                "ua|xyz|7||"
            );
            assert_eq!(
                ev("$proxy_add_x_forwarded_for", r, &none),
                "1.2.3.4, 10.0.0.7"
            );
            assert_eq!(ev("$http_x_forwarded_for", r, &none), "1.2.3.4");
            assert_eq!(ev("$content_type|$content_length", r, &none), "text/plain|");
            assert_eq!(
                ev("$connection/$connection_requests $proxy_host", r, &none),
                "42/3 app"
            );
            assert_eq!(ev("$request_time $msec", r, &none), "0.250 1796317271.250");
            assert_eq!(ev("$time_iso8601", r, &none), "2026-12-03T17:01:11+00:00");
            assert_eq!(ev("$time_local", r, &none), "03/Dec/2026:17:01:11 +0000");
            assert_eq!(ev("$status", r, &none), "000");
            assert_eq!(
                ev("$binary_remote_addr", r, &none).as_bytes(),
                [10, 0, 0, 7]
            );
            assert_eq!(ev("$pid", r, &none), std::process::id().to_string());
            let id = ev("$request_id", r, &none);
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(id, ev("$request_id", r, &none), "stable within a request");
        });
    }

    #[test]
    fn cookie_and_arg_names_match_in_any_case_over_every_cookie_line() {
        let raw =
            "GET /?Page=9 HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: SID = x; Sid=  s2 \r\n\r\n";
        with_req(raw, |r| {
            let none = RespVars::default();
            // As nginx: the second Cookie line is searched, names match
            // without case, a name must be followed by `=` directly.
            assert_eq!(ev("$cookie_sid|$cookie_A|$arg_PAGE", r, &none), "s2|1|7");
        });
        assert_eq!(arg(b"Page=9&page=7", b"PAGE"), Some(&b"9"[..]));
        assert_eq!(cookie(b"x=1; Y=2", b"y"), Some(&b"2"[..]));
    }

    #[test]
    fn response_variables() {
        with_req("GET / HTTP/1.1\r\nHost: h\r\n\r\n", |r| {
            let head = b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Type: text/html\r\n\r\n";
            let resp = RespVars {
                status: 200,
                body_bytes: 12,
                bytes: 99,
                head,
                upstream_addr: Some(&crate::config::PeerAddr::Inet(
                    "127.0.0.1:9000".parse().unwrap(),
                )),
                upstream_status: 200,
                upstream_ms: Some(12),
                cache_status: Some("MISS"),
                upstream_head: b"",
            };
            assert_eq!(
                ev(
                    "$status $body_bytes_sent $bytes_sent $sent_http_etag $sent_http_content_type",
                    r,
                    &resp
                ),
                "200 12 99 \"v1\" text/html"
            );
            assert_eq!(
                ev("$upstream_addr $upstream_status $upstream_response_time $upstream_cache_status", r, &resp),
                "127.0.0.1:9000 200 0.012 MISS"
            );
            // Nothing known yet: empty, as nginx.
            let none = RespVars::default();
            assert_eq!(
                ev(
                    "[$upstream_addr$upstream_status$upstream_cache_status$sent_http_etag]",
                    r,
                    &none
                ),
                "[]"
            );
        });
    }

    #[test]
    fn host_falls_back_to_the_server_name_and_is_true_follows_nginx() {
        with_req("GET / HTTP/1.0\r\n\r\n", |r| {
            assert_eq!(ev("$host", r, &RespVars::default()), "example.com");
            let mut scratch = Vec::new();
            for (t, want) in [
                ("$arg_page", true),
                ("$arg_none", false),
                ("0", false),
                ("$arg_flag", false),
                ("x", true),
            ] {
                assert_eq!(
                    is_true(&Template::compile(t).unwrap(), r, &mut scratch),
                    want,
                    "{t}"
                );
            }
        });
    }
}
