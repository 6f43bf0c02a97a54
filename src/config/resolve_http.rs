//! Typed resolution, part 2: `http`, `server` and `location` blocks.
//!
//! Collects each level's settings as `Option`s, then merges them the nginx
//! way once the whole `http` block is read (inner level overrides outer; a
//! level with any `add_header` or `access_log` replaces the inherited list),
//! filling defaults last. Also owns `listen`, `return`, `access_log` (deduped
//! by path into `HttpConf::access_logs`) and `types { }`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::mime_default::default_mime_types;
use super::parse::Directive;
use super::resolve_cache::{
    check_cache_path_unique, check_zone_ref, parse_proxy_cache_path, CacheInherit,
};
use super::resolve_cluster;
use super::resolve_compat;
use super::resolve_extras::ExtrasInherit;
use super::resolve_gzip::GzipInherit;
use super::resolve_limits::{self, LimitsInherit, LocationOnly};
use super::resolve_proxy::{parse_pass, upstream_block, PassTarget, ProxyInherit, Upstreams};
use super::resolve_rewrite::{self, RewriteFlags};
use super::resolve_ssl::SslInherit;
use super::resolve_waiting_room::{HttpRooms, LocationRooms};
use super::types::{
    AccessLogConf, AddHeader, HttpConf, ListenConf, LocationConf, LocationMatch, LogFormat,
    ServerConf,
};
use super::types_limits::{LimitZoneConf, LimitsConf};
use super::types_rewrite::Op;
use super::values::{
    arg0, duration, flag, invalid_value, not_allowed, number, path_arg, positive, size, template,
    Spec, HTTP, LOCATION, SERVER,
};
use super::ConfigError;
use crate::util::units::{parse_duration_ms, parse_size};

/// Directives sluice knows but does not implement yet: a precise error
/// rather than a setting that would be silently ignored.
const NOT_YET: &[&str] = &["proxy_cache_methods"];

/// nginx's generic checks for `d` appearing in context `ctx`, in nginx's
/// order: known, allowed here, `;` vs `{`, argument count, duplicate. `seen`
/// holds the non-repeatable names already used in this block.
pub(crate) fn check<'a>(
    d: &'a Directive,
    ctx: u8,
    seen: &mut HashSet<&'a str>,
) -> Result<(), ConfigError> {
    let name = d.name.as_str();
    if NOT_YET.contains(&name) {
        return Err(d.error(format!("\"{name}\" is not supported yet")));
    }
    if let Some(why) = super::resolve_compat::refused(name) {
        return Err(d.error(format!("\"{name}\": {why}")));
    }
    let cache_spec = super::resolve_cache::CACHE_DIRECTIVES
        .iter()
        .find(|c| c.0 == name)
        .map(|&(name, contexts, min_args, max_args, repeatable)| Spec {
            name,
            contexts,
            block: false,
            min_args,
            max_args,
            repeatable,
        });
    let Some(spec) = super::values::SPECS
        .iter()
        .chain(super::resolve_limits::SPECS)
        .chain(super::resolve_cluster::SPECS)
        .chain(super::resolve_waiting_room::SPECS)
        .chain(super::resolve_ssl::SPECS)
        .chain(super::resolve_compat::SPECS)
        .chain(super::resolve_extras::SPECS)
        .chain(super::resolve_gzip::SPECS)
        .chain(super::resolve_map::SPECS)
        .chain(super::resolve_redirects::SPECS)
        .chain(super::resolve_access::SPECS)
        .chain(super::resolve_rewrite::SPECS)
        .find(|s| s.name == name)
        .or(cache_spec.as_ref())
    else {
        return Err(d.error(format!("unknown directive \"{name}\"")));
    };
    if spec.contexts & ctx == 0 {
        return Err(not_allowed(d));
    }
    match (spec.block, d.block.is_some()) {
        (false, true) => {
            return Err(d.error(format!("directive \"{name}\" is not terminated by \";\"")))
        }
        (true, false) => return Err(d.error(format!("directive \"{name}\" has no opening \"{{\""))),
        _ => {}
    }
    if d.args.len() < spec.min_args || d.args.len() > spec.max_args {
        return Err(d.error(format!(
            "invalid number of arguments in \"{name}\" directive"
        )));
    }
    if !spec.repeatable && !seen.insert(name) {
        return Err(d.error(format!("\"{name}\" directive is duplicate")));
    }
    Ok(())
}

/// Shared state while resolving one `http` block.
struct State<'a> {
    conf_dir: &'a Path,
    /// Distinct access logs, by path.
    logs: Vec<AccessLogConf>,
    /// `log_format`s so far (an `access_log` names one defined before it).
    formats: Vec<super::LogFormatConf>,
    /// Addresses that already have a `default_server`.
    default_servers: HashSet<SocketAddr>,
}

/// Settings inheritable http -> server -> location; `None` = not set here.
#[derive(Debug, Default, Clone)]
struct Inherit {
    root: Option<PathBuf>,
    index: Option<Vec<String>>,
    /// Indices into `State::logs`; `Some(empty)` = `access_log off`.
    access_logs: Option<Vec<usize>>,
    access_off: bool,
    keepalive_timeout_ms: Option<u64>,
    keepalive_requests: Option<u64>,
    client_body_timeout_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    client_max_body_size_bytes: Option<u64>,
    sendfile: Option<bool>,
    tcp_nodelay: Option<bool>,
    server_tokens: Option<bool>,
    add_headers: Option<Vec<AddHeader>>,
    proxy: ProxyInherit,
    cache: CacheInherit,
    /// Line of this level's `proxy_cache`, to report an unknown zone there.
    cache_ref: Option<Directive>,
    limits: LimitsInherit,
    extras: ExtrasInherit,
    gzip: GzipInherit,
    error_pages: Option<Vec<super::ErrorPage>>,
    try_files: Option<super::TryFiles>,
    access: Option<Vec<super::AccessRule>>,
    auth: super::resolve_access::AccessInherit,
    rewrite_flags: RewriteFlags,
}

/// http + server settings (`client_header_timeout`, `large_client_header_buffers`).
#[derive(Debug, Default, Clone, Copy)]
struct HeaderSettings {
    client_header_timeout_ms: Option<u64>,
    large_header_buffers: Option<(usize, usize)>,
    http2: Option<bool>,
    http2_streams: Option<u32>,
    http2_field: Option<usize>,
    http2_header: Option<usize>,
    http2_recv_ms: Option<u64>,
    http2_idle_ms: Option<u64>,
}

struct RawLocation {
    line: usize,
    match_kind: LocationMatch,
    path: String,
    regex: Option<regex::bytes::Regex>,
    inherit: Inherit,
    /// The rewrite-module ops (an `if`'s location is an index into `ifs`
    /// until the server numbers them).
    rewrite: Vec<Op>,
    /// The blocks of the location's `if`s, outer before inner.
    ifs: Vec<RawIf>,
    status: bool,
    pass: Option<PassTarget>,
    limits: LocationOnly,
    rooms: LocationRooms,
    alias: Option<super::Template>,
    limit_except: Option<super::resolve_access::RawLimitExcept>,
}

/// The block of an `if` in a location.
struct RawIf {
    /// The enclosing `if` (index in the location's `ifs`), or the location.
    parent: Option<usize>,
    raw: RawLocation,
}

impl RawLocation {
    fn blank(line: usize, match_kind: LocationMatch, path: String) -> RawLocation {
        RawLocation {
            line,
            match_kind,
            path,
            regex: None,
            inherit: Inherit::default(),
            rewrite: Vec::new(),
            ifs: Vec::new(),
            status: false,
            pass: None,
            limits: LocationOnly::default(),
            rooms: LocationRooms::default(),
            alias: None,
            limit_except: None,
        }
    }
}

struct RawServer {
    line: usize,
    listens: Vec<ListenConf>,
    /// The first `listen ... ssl`, for its error.
    ssl_listen: Option<Directive>,
    /// The `listen` directives, for TLS errors about their address.
    listen_dirs: Vec<Directive>,
    server_names: Vec<String>,
    headers: HeaderSettings,
    ssl: SslInherit,
    inherit: Inherit,
    rewrite: Vec<Op>,
    locations: Vec<RawLocation>,
}

impl Inherit {
    /// Applies `d` if it is an inheritable setting; `Ok(false)` otherwise.
    fn apply(&mut self, d: &Directive, st: &mut State) -> Result<bool, ConfigError> {
        if self.limits.apply(d)?
            || self.extras.apply(d)?
            || self.gzip.apply(d)?
            || self.auth.apply(d, st.conf_dir)?
            || self.rewrite_flags.apply(d)?
        {
            return Ok(true);
        }
        match d.name.as_str() {
            "error_page" => {
                let p = super::resolve_redirects::error_page(d)?;
                self.error_pages.get_or_insert_with(Vec::new).push(p);
                return Ok(true);
            }
            "try_files" => {
                self.try_files = Some(super::resolve_redirects::try_files(d)?);
                return Ok(true);
            }
            "allow" | "deny" => {
                let r = super::resolve_access::rule(d)?;
                self.access.get_or_insert_with(Vec::new).push(r);
                return Ok(true);
            }
            _ => {}
        }
        let v = arg0(d);
        match d.name.as_str() {
            "root" => self.root = Some(path_arg(d, st.conf_dir, v)?),
            "index" => {
                if let Some(bad) = d.args.iter().find(|a| a.is_empty()) {
                    return Err(invalid_value(d, bad));
                }
                self.index
                    .get_or_insert_with(Vec::new)
                    .extend(d.args.iter().cloned());
            }
            "access_log" => match access_log(d, st)? {
                Some(i) => self.access_logs.get_or_insert_with(Vec::new).push(i),
                None => self.access_off = true,
            },
            "keepalive_timeout" => {
                if d.args.len() > 1 {
                    return Err(d.error("keepalive_timeout header value is not supported"));
                }
                self.keepalive_timeout_ms = Some(duration(d, v)?);
            }
            "keepalive_requests" => self.keepalive_requests = Some(number(d, v)?),
            "client_body_timeout" => self.client_body_timeout_ms = Some(duration(d, v)?),
            "send_timeout" => self.send_timeout_ms = Some(duration(d, v)?),
            "client_max_body_size" => self.client_max_body_size_bytes = Some(size(d, v)?),
            "sendfile" => self.sendfile = Some(flag(d)?),
            "tcp_nodelay" => self.tcp_nodelay = Some(flag(d)?),
            "server_tokens" => self.server_tokens = Some(flag(d)?),
            "add_header" => {
                let h = add_header(d)?;
                self.add_headers.get_or_insert_with(Vec::new).push(h);
            }
            _ => {
                if self.cache.apply(d)? {
                    if d.name == "proxy_cache" {
                        self.cache_ref = Some(d.clone());
                    }
                    return Ok(true);
                }
                return self.proxy.apply(d, st.conf_dir);
            }
        }
        Ok(true)
    }

    /// Ends collection for a level: `access_log off` wins over the others.
    fn finish(mut self) -> Inherit {
        if self.access_off {
            self.access_logs = Some(Vec::new());
        }
        self
    }

    /// `self` (inner) over `outer`.
    fn over(self, outer: &Inherit) -> Inherit {
        Inherit {
            root: self.root.or_else(|| outer.root.clone()),
            index: self.index.or_else(|| outer.index.clone()),
            access_logs: self.access_logs.or_else(|| outer.access_logs.clone()),
            access_off: false,
            keepalive_timeout_ms: self.keepalive_timeout_ms.or(outer.keepalive_timeout_ms),
            keepalive_requests: self.keepalive_requests.or(outer.keepalive_requests),
            client_body_timeout_ms: self.client_body_timeout_ms.or(outer.client_body_timeout_ms),
            send_timeout_ms: self.send_timeout_ms.or(outer.send_timeout_ms),
            client_max_body_size_bytes: self
                .client_max_body_size_bytes
                .or(outer.client_max_body_size_bytes),
            sendfile: self.sendfile.or(outer.sendfile),
            tcp_nodelay: self.tcp_nodelay.or(outer.tcp_nodelay),
            server_tokens: self.server_tokens.or(outer.server_tokens),
            add_headers: self.add_headers.or_else(|| outer.add_headers.clone()),
            proxy: self.proxy.over(&outer.proxy),
            cache: self.cache.over(&outer.cache),
            cache_ref: self.cache_ref.or_else(|| outer.cache_ref.clone()),
            limits: self.limits.over(&outer.limits),
            extras: self.extras.over(&outer.extras),
            gzip: self.gzip.over(&outer.gzip),
            error_pages: self.error_pages.or_else(|| outer.error_pages.clone()),
            try_files: self.try_files.or_else(|| outer.try_files.clone()),
            access: self.access.or_else(|| outer.access.clone()),
            auth: self.auth.over(&outer.auth),
            rewrite_flags: self.rewrite_flags.over(&outer.rewrite_flags),
        }
    }

    /// A location with these (fully merged) settings and the defaults.
    fn into_location(
        self,
        raw: RawLocation,
        conf_dir: &Path,
        upstreams: &mut Upstreams,
        cache_paths: &[super::types_cache::CachePathConf],
        zones: &[LimitZoneConf],
        rooms: &HttpRooms,
    ) -> Result<LocationConf, ConfigError> {
        let pass = match &raw.pass {
            Some(t) => Some(self.proxy.resolve_pass(t, upstreams)?),
            None => None,
        };
        let cache = self.cache.finish();
        if let (Some(zone), Some(d)) = (&cache.zone, &self.cache_ref) {
            check_zone_ref(d, zone, cache_paths)?;
        }
        let limits = resolve_limits::finish_location(&self.limits, raw.limits, zones)?;
        let waiting_room = rooms.location(raw.rooms)?;
        let access = self.access.unwrap_or_default();
        let (auth, realip) = self.auth.finish(raw.limit_except, &access);
        let prefix = !matches!(
            raw.match_kind,
            super::LocationMatch::Regex | super::LocationMatch::Named
        );
        let proxy = self
            .proxy
            .into_conf(pass, raw.pass.as_ref(), &raw.path, prefix)?;
        Ok(LocationConf {
            line: raw.line,
            match_kind: raw.match_kind,
            path: raw.path,
            regex: raw.regex,
            root: self.root.unwrap_or_else(|| conf_dir.join("html")),
            index: self.index.unwrap_or_else(|| vec!["index.html".to_string()]),
            rewrite: self.rewrite_flags.conf(raw.rewrite),
            alias: raw.alias,
            status: raw.status,
            access_logs: self.access_logs.unwrap_or_default(),
            keepalive_timeout_ms: self.keepalive_timeout_ms.unwrap_or(75_000),
            keepalive_requests: self.keepalive_requests.unwrap_or(1000),
            client_body_timeout_ms: self.client_body_timeout_ms.unwrap_or(60_000),
            send_timeout_ms: self.send_timeout_ms.unwrap_or(60_000),
            client_max_body_size_bytes: self.client_max_body_size_bytes.unwrap_or(1 << 20),
            sendfile: self.sendfile.unwrap_or(true),
            tcp_nodelay: self.tcp_nodelay.unwrap_or(true),
            server_tokens: self.server_tokens.unwrap_or(true),
            extras: self.extras.finish(),
            gzip: self.gzip.finish(),
            error_pages: self.error_pages.unwrap_or_default(),
            try_files: self.try_files,
            access,
            auth,
            realip,
            add_headers: self.add_headers.unwrap_or_default(),
            proxy,
            cache,
            limits,
            waiting_room,
        })
    }
}

impl HeaderSettings {
    /// Applies `d` if it is an http+server setting; `Ok(false)` otherwise.
    fn apply(&mut self, d: &Directive) -> Result<bool, ConfigError> {
        match d.name.as_str() {
            "client_header_timeout" => {
                self.client_header_timeout_ms = Some(duration(d, arg0(d))?);
            }
            "large_client_header_buffers" => {
                let count = positive(d, arg0(d))?;
                let size_arg = d.args.get(1).map_or("", String::as_str);
                let bytes = size(d, size_arg)?;
                if bytes < 1024 {
                    return Err(d.error(format!(
                        "invalid value \"{size_arg}\" in \"{}\" directive, the size must be at least 1k",
                        d.name
                    )));
                }
                let bytes = usize::try_from(bytes).map_err(|_| invalid_value(d, size_arg))?;
                self.large_header_buffers = Some((count, bytes));
            }
            "http2" => {
                self.http2 = Some(match arg0(d) {
                    "on" => true,
                    "off" => false,
                    v => return Err(invalid_value(d, v)),
                });
            }
            "http2_max_concurrent_streams" => {
                let n = positive(d, arg0(d))?;
                self.http2_streams = Some(u32::try_from(n).map_err(|_| invalid_value(d, arg0(d)))?);
            }
            "http2_max_field_size" | "http2_max_header_size" => {
                let v = arg0(d);
                let n = size(d, v)?;
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| invalid_value(d, v))?;
                if d.name == "http2_max_field_size" {
                    self.http2_field = Some(n);
                } else {
                    self.http2_header = Some(n);
                }
            }
            "http2_recv_timeout" => self.http2_recv_ms = Some(duration(d, arg0(d))?),
            "http2_idle_timeout" => self.http2_idle_ms = Some(duration(d, arg0(d))?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Resolves the directives of an `http { }` block.
pub(crate) fn resolve_http(block: &[Directive], conf_dir: &Path) -> Result<HttpConf, ConfigError> {
    // `map` variables are known everywhere in the block, before their map.
    let names = super::resolve_map::names(block)?;
    let auth_names = super::resolve_access::set_names(block, &names)?;
    let script = resolve_rewrite::script_names(block);
    super::vars::with_map_names(names, || {
        super::vars::with_auth_set_names(auth_names, || {
            super::vars::with_script_names(script, || resolve_http_block(block, conf_dir))
        })
    })
}

fn resolve_http_block(block: &[Directive], conf_dir: &Path) -> Result<HttpConf, ConfigError> {
    let mut st = State {
        conf_dir,
        logs: Vec::new(),
        formats: Vec::new(),
        default_servers: HashSet::new(),
    };
    let mut seen = HashSet::new();
    let mut inherit = Inherit::default();
    let mut headers = HeaderSettings::default();
    let mut ssl = SslInherit::default();
    let mut mime: Option<Vec<(String, String)>> = None;
    let mut default_type = None;
    let mut raw_servers = Vec::new();
    let mut upstreams = Upstreams::default();
    let mut cache_paths = Vec::new();
    let mut zones = Vec::new();
    let mut rooms = HttpRooms::default();
    let mut cluster = None;
    let mut cluster_zone = None;
    let mut maps = Vec::new();
    for d in block {
        check(d, HTTP, &mut seen)?;
        let (zone_count, room_count) = (zones.len(), rooms.zone_count());
        if resolve_limits::zone_directive(d, &mut zones)? || rooms.apply(d, conf_dir)? {
            let new_cluster_zone = match zones.get(zone_count..) {
                Some([z]) => z.cluster.then(|| z.name.clone()),
                _ => rooms.cluster_zone_since(room_count),
            };
            if let (Some(name), None) = (new_cluster_zone, &cluster_zone) {
                cluster_zone = Some(resolve_cluster::missing(d, &name));
            }
            continue;
        }
        if inherit.apply(d, &mut st)?
            || headers.apply(d)?
            || ssl.apply(d, conf_dir)?
            || resolve_compat::apply(d, HTTP)?
        {
            continue;
        }
        match d.name.as_str() {
            "cluster" => cluster = Some(resolve_cluster::parse(d)?),
            "map" => maps.push(super::resolve_map::resolve(d)?),
            "log_format" => {
                let f = log_format(d)?;
                if f.name == "combined" || st.formats.iter().any(|o| o.name == f.name) {
                    return Err(d.error(format!("duplicate \"log_format\" name \"{}\"", f.name)));
                }
                st.formats.push(f);
            }
            "types" => types_block(d, mime.get_or_insert_with(Vec::new))?,
            "default_type" => default_type = Some(arg0(d).to_string()),
            "server" => raw_servers.push(resolve_server(d, &mut st)?),
            "proxy_cache_path" => {
                let p = parse_proxy_cache_path(d, conf_dir)?;
                check_cache_path_unique(d, &p, &cache_paths)?;
                cache_paths.push(p);
            }
            "upstream" => {
                let u = upstream_block(d)?;
                if upstreams.confs.iter().any(|o| o.name == u.name) {
                    return Err(d.error(format!("duplicate upstream \"{}\"", u.name)));
                }
                upstreams.confs.push(u);
            }
            _ => return Err(not_allowed(d)),
        }
    }
    if let (None, Some(e)) = (&cluster, cluster_zone) {
        return Err(e);
    }
    let http_inherit = inherit.finish();
    let listen_dirs: Vec<Vec<Directive>> =
        raw_servers.iter().map(|s| s.listen_dirs.clone()).collect();
    http_inherit.limits.check_refs(&zones)?;
    let servers = raw_servers
        .into_iter()
        .map(|s| {
            merge_server(
                s,
                &http_inherit,
                headers,
                &ssl,
                conf_dir,
                &mut upstreams,
                &cache_paths,
                &zones,
                &rooms,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tls = tls_addresses(&servers, &listen_dirs)?;
    Ok(HttpConf {
        access_logs: st.logs,
        log_formats: st.formats,
        mime_types: mime.unwrap_or_else(default_mime_types),
        default_type: default_type.unwrap_or_else(|| "application/octet-stream".to_string()),
        servers,
        upstreams: upstreams.confs,
        upstream_tls: upstreams.tls,
        cache_paths,
        limits: LimitsConf { zones },
        waiting_rooms: rooms.finish()?,
        cluster,
        tls,
        maps,
    })
}

/// The TLS configuration of every address some `listen ... ssl` names:
/// each server on it by SNI with its own handshake settings (one without
/// certificates of its own answers with the default server's, which must
/// have one), the session cache and tickets of the default server.
fn tls_addresses(
    servers: &[ServerConf],
    listen_dirs: &[Vec<Directive>],
) -> Result<Vec<(SocketAddr, crate::tls::TlsAddress)>, ConfigError> {
    let mut out = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    // `shared:NAME:SIZE` zones, one mapping per name for every address.
    let mut zones: HashMap<String, (u64, crate::tls::session_cache::SharedSessions)> =
        HashMap::new();
    for s in servers {
        for l in s.listens.iter().filter(|l| l.ssl) {
            if !addrs.contains(&l.addr) {
                addrs.push(l.addr);
            }
        }
    }
    for addr in addrs {
        let on: Vec<usize> = (0..servers.len())
            .filter(|&i| servers[i].listens.iter().any(|l| l.addr == addr))
            .collect();
        let default = on
            .iter()
            .position(|&i| {
                servers[i]
                    .listens
                    .iter()
                    .any(|l| l.addr == addr && l.default_server)
            })
            .unwrap_or(0);
        let def = &servers[on[default]];
        if def.ssl.certificates.is_empty() {
            let at = listen_dirs
                .get(on[default])
                .and_then(|ds| ds.first())
                .expect("a server on an address has its listen");
            return Err(at.error(format!(
                "no \"ssl_certificate\" is defined for the default server of the TLS address {addr}"
            )));
        }
        let keys_of = |s: &ServerConf| -> Vec<_> {
            let own = if s.ssl.certificates.is_empty() {
                &def.ssl.certificates
            } else {
                &s.ssl.certificates
            };
            own.iter().map(|c| c.loaded.clone()).collect()
        };
        // Each server's own handshake settings: the ClientHello's SNI
        // picks the server, and with it the protocols, curves and client
        // certificate check.
        let entries = on
            .iter()
            .map(|&i| {
                let ssl = &servers[i].ssl;
                crate::tls::ServerEntry {
                    names: servers[i].server_names.clone(),
                    keys: keys_of(&servers[i]),
                    handshake: crate::tls::server::Handshake {
                        tls12: ssl.tls12,
                        tls13: ssl.tls13,
                        prefer_server_ciphers: ssl.prefer_server_ciphers,
                        curves: ssl.curves.clone(),
                        client_auth: ssl
                            .client_certificate
                            .as_ref()
                            .map(|(p, auth)| (auth.clone(), ssl.verify_client, p.clone())),
                    },
                }
            })
            .collect();
        let ssl = &def.ssl;
        let opts = crate::tls::Options {
            session_cache: match &ssl.session_cache {
                super::SessionCache::Off => None,
                super::SessionCache::Builtin(n) => {
                    Some(crate::tls::server::SessionStore::Builtin(*n))
                }
                super::SessionCache::Shared { name, bytes } => {
                    let timeout_s = (ssl.session_timeout_ms / 1000).max(1);
                    let at = || listen_dirs[on[default]].first().expect("listen");
                    let zone = match zones.get(name) {
                        Some((b, _)) if b != bytes => {
                            return Err(at().error(format!(
                                "ssl_session_cache zone \"{name}\" is declared with two sizes"
                            )))
                        }
                        Some((_, z)) => z.with_timeout(timeout_s),
                        None => {
                            let z =
                                crate::tls::session_cache::SharedSessions::new(*bytes, timeout_s)
                                    .map_err(|e| {
                                    at().error(format!("ssl_session_cache \"{name}\": {e}"))
                                })?;
                            zones.insert(name.clone(), (*bytes, z.clone()));
                            z
                        }
                    };
                    Some(crate::tls::server::SessionStore::Shared(zone))
                }
            },
            tickets: ssl.session_tickets.then(|| {
                (
                    ssl.ticket_keys.clone(),
                    (ssl.session_timeout_ms / 1000).max(1),
                )
            }),
            alpn: if on.iter().any(|&i| servers[i].speaks_h2_on(addr)) {
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            },
        };
        let cfg = crate::tls::build(entries, default, &opts).map_err(|e| {
            listen_dirs[on[default]]
                .first()
                .expect("listen")
                .error(format!("TLS for {addr}: {e}"))
        })?;
        out.push((addr, cfg));
    }
    Ok(out)
}

/// Merges a server with the http level and fills defaults.
#[allow(clippy::too_many_arguments)]
fn merge_server(
    raw: RawServer,
    http: &Inherit,
    http_headers: HeaderSettings,
    http_ssl: &SslInherit,
    conf_dir: &Path,
    upstreams: &mut Upstreams,
    cache_paths: &[super::types_cache::CachePathConf],
    zones: &[LimitZoneConf],
    rooms: &HttpRooms,
) -> Result<ServerConf, ConfigError> {
    raw.inherit.limits.check_refs(zones)?;
    let server_inherit = raw.inherit.over(http);
    let server_realip = server_inherit.auth.finish(None, &[]).1;
    let covers_root = raw.locations.iter().any(|l| {
        l.path == "/"
            && matches!(
                l.match_kind,
                LocationMatch::Prefix | LocationMatch::PrefixNoRegex
            )
    });
    let mut raw_locations = raw.locations;
    if !covers_root {
        raw_locations.push(RawLocation::blank(
            0,
            LocationMatch::Prefix,
            "/".to_string(),
        ));
    }
    // The blocks of `if`s follow the locations (`Op::If` names them).
    let base = raw_locations.len();
    let mut locations = Vec::with_capacity(base);
    let mut if_locations = Vec::new();
    for mut l in raw_locations {
        let merged = std::mem::take(&mut l.inherit).over(&server_inherit);
        let ifs = std::mem::take(&mut l.ifs);
        resolve_rewrite::offset_ifs(&mut l.rewrite, base + if_locations.len());
        let parent =
            merged
                .clone()
                .into_location(l, conf_dir, upstreams, cache_paths, zones, rooms)?;
        // Each block: its settings over its parent's (the location or the
        // enclosing `if`), the parent's location-only ones.
        let mut done: Vec<(Inherit, LocationConf)> = Vec::new();
        for rif in ifs {
            let (outer, outer_conf) = match rif.parent {
                Some(p) => (&done[p].0, &done[p].1),
                None => (&merged, &parent),
            };
            let mut raw = rif.raw;
            let own_pass = raw.pass.is_some();
            let if_merged = std::mem::take(&mut raw.inherit).over(outer);
            let mut conf = if_merged.clone().into_location(
                raw,
                conf_dir,
                upstreams,
                cache_paths,
                zones,
                rooms,
            )?;
            conf.match_kind = LocationMatch::If;
            conf.path = outer_conf.path.clone();
            conf.alias = outer_conf.alias.clone();
            conf.status = outer_conf.status;
            conf.limits = outer_conf.limits.clone();
            conf.waiting_room = outer_conf.waiting_room.clone();
            conf.try_files = outer_conf.try_files.clone();
            if !own_pass {
                conf.proxy.pass = outer_conf.proxy.pass.clone();
            }
            done.push((if_merged, conf));
        }
        locations.push(parent);
        if_locations.extend(done.into_iter().map(|(_, c)| c));
    }
    locations.extend(if_locations);
    let listens = if raw.listens.is_empty() {
        vec![ListenConf {
            addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80)),
            default_server: false,
            reuseport: false,
            backlog: 4096,
            ssl: false,
            http2: false,
        }]
    } else {
        raw.listens
    };
    let ssl = raw.ssl.over(http_ssl, conf_dir)?;
    if let (Some(d), true) = (&raw.ssl_listen, ssl.certificates.is_empty()) {
        return Err(
            d.error("no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive")
        );
    }
    let realip = locations.iter().any(|l| l.realip.is_some());
    Ok(ServerConf {
        realip,
        realip_server: server_realip,
        line: raw.line,
        listens,
        server_names: raw.server_names,
        client_header_timeout_ms: raw
            .headers
            .client_header_timeout_ms
            .or(http_headers.client_header_timeout_ms)
            .unwrap_or(60_000),
        large_header_buffers: raw
            .headers
            .large_header_buffers
            .or(http_headers.large_header_buffers)
            .unwrap_or((4, 8192)),
        http2: {
            let (s, h) = (&raw.headers, &http_headers);
            let d = super::Http2Conf::default();
            super::Http2Conf {
                on: s.http2.or(h.http2).unwrap_or(d.on),
                max_concurrent_streams: s
                    .http2_streams
                    .or(h.http2_streams)
                    .unwrap_or(d.max_concurrent_streams),
                max_field_bytes: s.http2_field.or(h.http2_field),
                max_header_bytes: s.http2_header.or(h.http2_header),
                recv_timeout_ms: s.http2_recv_ms.or(h.http2_recv_ms),
                idle_timeout_ms: s.http2_idle_ms.or(h.http2_idle_ms),
            }
        },
        rewrite: server_inherit.rewrite_flags.conf(raw.rewrite),
        locations,
        ssl,
    })
}

fn resolve_server(server: &Directive, st: &mut State) -> Result<RawServer, ConfigError> {
    let mut raw = RawServer {
        line: server.line,
        listens: Vec::new(),
        ssl_listen: None,
        listen_dirs: Vec::new(),
        server_names: Vec::new(),
        headers: HeaderSettings::default(),
        ssl: SslInherit::default(),
        inherit: Inherit::default(),
        rewrite: Vec::new(),
        locations: Vec::new(),
    };
    let mut seen = HashSet::new();
    let mut location_keys = HashSet::new();
    for d in server.children() {
        check(d, SERVER, &mut seen)?;
        if raw.inherit.apply(d, st)?
            || raw.headers.apply(d)?
            || raw.ssl.apply(d, st.conf_dir)?
            || resolve_compat::apply(d, SERVER)?
        {
            continue;
        }
        match d.name.as_str() {
            "listen" => {
                let l = listen(d)?;
                if raw.listens.iter().any(|o| o.addr == l.addr) {
                    return Err(d.error(format!("duplicate listen {}", l.addr)));
                }
                if l.default_server && !st.default_servers.insert(l.addr) {
                    return Err(d.error(format!("a duplicate default server for {}", l.addr)));
                }
                if l.ssl && raw.ssl_listen.is_none() {
                    raw.ssl_listen = Some(d.clone());
                }
                raw.listen_dirs.push(d.clone());
                raw.listens.push(l);
            }
            "server_name" => {
                for name in &d.args {
                    if name.starts_with('~') {
                        return Err(
                            d.error(format!("regex server names are not supported: \"{name}\""))
                        );
                    }
                    raw.server_names.push(name.to_ascii_lowercase());
                }
            }
            "if" => raw.rewrite.push(resolve_rewrite::server_if(d)?),
            n if resolve_rewrite::is_op(n) => raw.rewrite.push(resolve_rewrite::op(d)?),
            "location" => {
                let loc = resolve_location(d, st)?;
                // nginx: `/x` and `^~ /x` are the same static location;
                // regex locations may repeat (the first wins).
                let key = (loc.match_kind, loc.path.clone());
                let key = match key.0 {
                    LocationMatch::PrefixNoRegex => (LocationMatch::Prefix, key.1),
                    _ => key,
                };
                if key.0 != LocationMatch::Regex && !location_keys.insert(key) {
                    return Err(d.error(format!("duplicate location \"{}\"", loc.path)));
                }
                raw.locations.push(loc);
            }
            _ => return Err(not_allowed(d)),
        }
    }
    raw.inherit = std::mem::take(&mut raw.inherit).finish();
    Ok(raw)
}

fn resolve_location(loc: &Directive, st: &mut State) -> Result<RawLocation, ConfigError> {
    let (match_kind, path, caseless) = location_match(loc)?;
    let regex = if match_kind == LocationMatch::Regex {
        let re = regex::bytes::RegexBuilder::new(&path)
            .case_insensitive(caseless)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let why = e.to_string();
                let last = why.lines().last().unwrap_or("").trim().to_string();
                loc.error(format!("invalid regex \"{path}\": {last}"))
            })?;
        Some(re)
    } else {
        None
    };
    let mut raw = RawLocation::blank(loc.line, match_kind, path);
    raw.regex = regex;
    let mut seen = HashSet::new();
    for d in loc.children() {
        if d.name == "location" {
            return Err(d.error("nested locations are not supported"));
        }
        check(d, LOCATION, &mut seen)?;
        if raw.inherit.apply(d, st)?
            || raw.limits.apply(d)?
            || raw.rooms.apply(d, st.conf_dir)?
            || resolve_compat::apply(d, LOCATION)?
        {
            continue;
        }
        match d.name.as_str() {
            "if" => {
                let mut ifs = std::mem::take(&mut raw.ifs);
                let op = location_if(d, st, &mut ifs, None)?;
                raw.ifs = ifs;
                raw.rewrite.push(op);
            }
            n if resolve_rewrite::is_op(n) => raw.rewrite.push(resolve_rewrite::op(d)?),
            "status" => raw.status = true,
            "proxy_pass" => raw.pass = Some(parse_pass(d)?),
            "limit_except" => {
                raw.limit_except = Some(super::resolve_access::limit_except(d, st.conf_dir)?)
            }
            "alias" => {
                if raw.inherit.root.is_some() {
                    return Err(d.error(
                        "\"alias\" directive is duplicate, \"root\" directive was specified earlier",
                    ));
                }
                let v = arg0(d);
                let abs = if v.starts_with('/') || v.starts_with('$') {
                    v.to_string()
                } else {
                    st.conf_dir.join(v).display().to_string()
                };
                raw.alias = Some(template(d, &abs)?);
            }
            _ => return Err(not_allowed(d)),
        }
    }
    raw.inherit = std::mem::take(&mut raw.inherit).finish();
    Ok(raw)
}

/// `location [=|^~] PATH` (also the joined forms `=/x`, `^~/x`).
/// A `location`'s modifier and path: (kind, path or pattern, caseless).
fn location_match(d: &Directive) -> Result<(LocationMatch, String, bool), ConfigError> {
    match d.args.as_slice() {
        [m, path] => match m.as_str() {
            "=" => Ok((LocationMatch::Exact, path.clone(), false)),
            "^~" => Ok((LocationMatch::PrefixNoRegex, path.clone(), false)),
            "~" => Ok((LocationMatch::Regex, path.clone(), false)),
            "~*" => Ok((LocationMatch::Regex, path.clone(), true)),
            _ => Err(d.error(format!("invalid location modifier \"{m}\""))),
        },
        [p] => {
            if let Some(rest) = p.strip_prefix("^~") {
                Ok((LocationMatch::PrefixNoRegex, rest.to_string(), false))
            } else if let Some(rest) = p.strip_prefix('=') {
                Ok((LocationMatch::Exact, rest.to_string(), false))
            } else if let Some(rest) = p.strip_prefix("~*") {
                Ok((LocationMatch::Regex, rest.to_string(), true))
            } else if let Some(rest) = p.strip_prefix('~') {
                Ok((LocationMatch::Regex, rest.to_string(), false))
            } else if p.starts_with('@') {
                Ok((LocationMatch::Named, p.clone(), false))
            } else {
                Ok((LocationMatch::Prefix, p.clone(), false))
            }
        }
        _ => Err(d.error("invalid number of arguments in \"location\" directive")),
    }
}

/// An `if` in a location (or in an `if` of one, `parent`): its condition,
/// its rewrite ops, and a block of its own in `ifs` for the other
/// directives nginx allows there (`IN_LOCATION_IF`).
fn location_if(
    d: &Directive,
    st: &mut State,
    ifs: &mut Vec<RawIf>,
    parent: Option<usize>,
) -> Result<Op, ConfigError> {
    let cond = resolve_rewrite::condition(d)?;
    let id = ifs.len();
    ifs.push(RawIf {
        parent,
        raw: RawLocation::blank(d.line, LocationMatch::If, String::new()),
    });
    let mut raw = RawLocation::blank(d.line, LocationMatch::If, String::new());
    let mut ops = Vec::new();
    let mut seen = HashSet::new();
    for c in d.children() {
        if c.name == "location" {
            return Err(not_allowed(c));
        }
        check(c, LOCATION, &mut seen)?;
        match c.name.as_str() {
            "if" => ops.push(location_if(c, st, ifs, Some(id))?),
            n if resolve_rewrite::is_op(n) => ops.push(resolve_rewrite::op(c)?),
            "rewrite_log" | "uninitialized_variable_warn" => {
                raw.inherit.rewrite_flags.apply(c)?;
            }
            "proxy_pass" => {
                let p = parse_pass(c)?;
                if p.uri.is_some() {
                    return Err(c.error(
                        "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
                    ));
                }
                raw.pass = Some(p);
            }
            n if resolve_rewrite::IN_LOCATION_IF.contains(&n) => {
                if !raw.inherit.apply(c, st)? {
                    return Err(not_allowed(c));
                }
            }
            _ => return Err(not_allowed(c)),
        }
    }
    raw.inherit = std::mem::take(&mut raw.inherit).finish();
    ifs[id].raw = raw;
    Ok(Op::If {
        cond,
        ops,
        loc: Some(id),
    })
}

/// `add_header NAME VALUE [always];`
fn add_header(d: &Directive) -> Result<AddHeader, ConfigError> {
    let name = arg0(d);
    let value = d.args.get(1).map_or("", String::as_str);
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_token) {
        return Err(d.error(format!("invalid header name \"{name}\"")));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(d.error(format!("invalid header value in \"{name}\"")));
    }
    let always = match d.args.get(2).map(String::as_str) {
        None => false,
        Some("always") => true,
        Some(other) => return Err(d.error(format!("invalid parameter \"{other}\""))),
    };
    Ok(AddHeader {
        name: name.to_string(),
        value: template(d, value)?,
        always,
    })
}

/// `access_log FILE|off [combined|json] [buffer=SIZE] [flush=TIME];` -> the
/// index in `st.logs`, or `None` for `off`.
fn access_log(d: &Directive, st: &mut State) -> Result<Option<usize>, ConfigError> {
    let target = arg0(d);
    if target == "off" {
        return match d.args.get(1) {
            None => Ok(None),
            Some(p) => Err(d.error(format!("invalid parameter \"{p}\""))),
        };
    }
    let mut conf = AccessLogConf {
        path: path_arg(d, st.conf_dir, target)?,
        format: LogFormat::Combined,
        buffer_bytes: 0,
        flush_ms: 0,
    };
    let mut params = d.args.iter().skip(1).map(String::as_str).peekable();
    if let Some(&fmt) = params.peek() {
        if !fmt.contains('=') {
            params.next();
            conf.format = match fmt {
                "combined" => LogFormat::Combined,
                "json" => LogFormat::Json,
                _ => match st.formats.iter().position(|f| f.name == fmt) {
                    Some(i) => LogFormat::Custom(i),
                    None => return Err(d.error(format!("unknown log format \"{fmt}\""))),
                },
            };
        }
    }
    for p in params {
        if let Some(v) = p.strip_prefix("buffer=") {
            conf.buffer_bytes = parse_size(v)
                .and_then(|b| usize::try_from(b).ok())
                .ok_or_else(|| d.error(format!("invalid buffer size \"{v}\"")))?;
        } else if let Some(v) = p.strip_prefix("flush=") {
            conf.flush_ms = parse_duration_ms(v)
                .ok_or_else(|| d.error(format!("invalid flush time \"{v}\"")))?;
        } else {
            return Err(d.error(format!("invalid parameter \"{p}\"")));
        }
    }
    if let Some(i) = st.logs.iter().position(|l| l.path == conf.path) {
        let old = &st.logs[i];
        if (old.format, old.buffer_bytes, old.flush_ms)
            != (conf.format, conf.buffer_bytes, conf.flush_ms)
        {
            return Err(d.error(format!(
                "conflicting access_log parameters for {}",
                conf.path.display()
            )));
        }
        return Ok(Some(i));
    }
    st.logs.push(conf);
    Ok(Some(st.logs.len() - 1))
}

/// `log_format NAME [escape=default|json|none] STRING...;` (the strings
/// are joined, as nginx's).
fn log_format(d: &Directive) -> Result<super::LogFormatConf, ConfigError> {
    let name = arg0(d).to_string();
    let mut rest = &d.args[1..];
    let mut escape = super::LogEscape::Default;
    if let Some(e) = rest.first().and_then(|a| a.strip_prefix("escape=")) {
        escape = match e {
            "default" => super::LogEscape::Default,
            "json" => super::LogEscape::Json,
            "none" => super::LogEscape::None,
            _ => return Err(invalid_value(d, e)),
        };
        rest = &rest[1..];
    }
    if rest.is_empty() {
        return Err(d.error("invalid number of arguments in \"log_format\" directive"));
    }
    Ok(super::LogFormatConf {
        name,
        escape,
        template: template(d, &rest.concat())?,
    })
}

/// `types { TYPE EXT...; ... }`: later extensions override earlier ones.
fn types_block(d: &Directive, mime: &mut Vec<(String, String)>) -> Result<(), ConfigError> {
    let mut index: HashMap<String, usize> = mime
        .iter()
        .enumerate()
        .map(|(i, (ext, _))| (ext.clone(), i))
        .collect();
    for entry in d.children() {
        if entry.block.is_some() {
            return Err(entry.error(format!(
                "directive \"{}\" is not terminated by \";\"",
                entry.name
            )));
        }
        for ext in &entry.args {
            let ext = ext.to_ascii_lowercase();
            match index.get(&ext) {
                Some(&i) => mime[i].1 = entry.name.clone(),
                None => {
                    index.insert(ext.clone(), mime.len());
                    mime.push((ext, entry.name.clone()));
                }
            }
        }
    }
    Ok(())
}

/// `listen ADDR [default_server] [reuseport] [backlog=N];`
fn listen(d: &Directive) -> Result<ListenConf, ConfigError> {
    let target = arg0(d);
    let addr = listen_addr(target).map_err(|what| {
        d.error(format!(
            "{what} in \"{target}\" of the \"listen\" directive"
        ))
    })?;
    let mut conf = ListenConf {
        addr,
        default_server: false,
        reuseport: false,
        backlog: 4096,
        ssl: false,
        http2: false,
    };
    for p in d.args.iter().skip(1) {
        match p.as_str() {
            "default_server" | "default" => conf.default_server = true,
            "reuseport" => conf.reuseport = true,
            "ssl" => conf.ssl = true,
            "http2" => conf.http2 = true,
            _ => {
                let Some(v) = p.strip_prefix("backlog=") else {
                    return Err(d.error(format!("invalid parameter \"{p}\"")));
                };
                conf.backlog = number(d, v)
                    .ok()
                    .and_then(|n| i32::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| d.error(format!("invalid backlog \"{v}\"")))?;
            }
        }
    }
    Ok(conf)
}

/// Parses `PORT`, `*:PORT`, `IPV4[:PORT]`, `[IPV6][:PORT]`,
/// `localhost[:PORT]`. The error is the nginx phrase ("invalid port", ...).
fn listen_addr(s: &str) -> Result<SocketAddr, &'static str> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&n| n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or("invalid port")
    };
    if s.starts_with("unix:") {
        return Err("unix domain sockets are not supported");
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port(s)?)));
    }
    let (host, port_num): (IpAddr, u16) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("invalid IPv6 address")?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| "invalid IPv6 address")?;
        let p = match after {
            "" => 80,
            _ => port(after.strip_prefix(':').ok_or("invalid port")?)?,
        };
        (ip.into(), p)
    } else {
        let (h, p) = match s.rsplit_once(':') {
            Some((h, p)) => (h, port(p)?),
            None => (s, 80),
        };
        let ip = if h == "*" {
            Ipv4Addr::UNSPECIFIED
        } else if h.eq_ignore_ascii_case("localhost") {
            Ipv4Addr::LOCALHOST
        } else if h.is_empty() {
            return Err("no host");
        } else {
            h.parse().map_err(|_| "host not found")?
        };
        (ip.into(), p)
    };
    Ok(SocketAddr::new(host, port_num))
}
