//! Command line of `sluice-bench`: a small hand-written option loop (wrk/oha style)
//! that turns argv into a validated [`Config`]. Every mistake becomes an [`ArgError`]
//! whose message `main` prints before exiting with status 2.

use crate::tls;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Usage text printed by `--help`.
pub const USAGE: &str = "\
sluice-bench: HTTP/1.1 and HTTPS load generator (keep-alive, burst and constant-rate modes)

usage: sluice-bench [OPTIONS] URL...

  --mode MODE          keepalive (default), burst, or rate (implied by --rate)
  -c, --connections N  connections (default 10); burst mode takes a list such as
                       100,1000,2000,5000,10000 (the default there)
  -d, --duration D     run time such as 10s, 500ms, 2m (default 10s; in burst mode
                       a hard cap on each burst, default timeout + 1s)
  -n, --requests N     stop after N requests (capped by -d, or by 10 minutes)
  -t, --threads N      event-loop threads (default 1)
      --rate R         open-loop rate in requests/s (R or R/s); latency is measured
                       from the intended send time (no coordinated omission)
      --pipeline D     requests in flight per connection (default 1)
  -m, --method M       request method (default GET)
  -H, --header H       extra request header \"Name: value\" (repeatable)
      --body FILE      send FILE as the request body
      --timeout D      per-request (and connect) timeout (default 10s)
      --sources N      spread connections over source addresses 127.0.0.1..N for
                       loopback targets (default 64 in burst mode, 1 otherwise)
      --no-keepalive   one request per connection (Connection: close), then a new
                       connection: with https, a full handshake each (connections/s)
      --json           print one JSON object instead of the table
  -h, --help           this text
  -V, --version        print the version

TLS, for https:// URLs (the certificate is not verified by default, like wrk):
      --cacert FILE    verify the server's certificate against the PEM roots in FILE
  -k, --insecure       do not verify the certificate (the default)
      --sni NAME       server name to send and verify (default: the URL's host; an
                       IP address sends none)
      --resume         resume sessions (tickets) across connections (default: every
                       connection a full handshake)
      --tls-version V  1.2 or 1.3 only (default: both offered)
      --tls-groups L   key exchange groups to offer, in order (default
                       x25519,p256,p384; also x25519mlkem768)

Several URLs (http:// or https://) are used round robin. In keepalive and rate modes,
`{n}` in a URL's path becomes a number unique to each request and run (e.g. cache
misses on purpose).
Every run stops by itself.
Exit status: 0 after a run, 1 if the run could not be set up, 2 for bad arguments.
";

/// Which experiment to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Closed loop over persistent connections.
    KeepAlive,
    /// C one-shot `Connection: close` connections opened at once, for each C.
    Burst,
    /// Open loop at a fixed request rate.
    Rate,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keepalive",
            Mode::Burst => "burst",
            Mode::Rate => "rate",
        }
    }
}

/// One target URL, resolved once at start.
#[derive(Clone, Debug)]
pub struct Url {
    /// The URL as given.
    pub raw: String,
    /// `https://`.
    pub tls: bool,
    /// Host part as written (for the Host header).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path and query, at least "/".
    pub path: String,
    /// Resolved address.
    pub addr: SocketAddr,
}

/// A validated run description.
#[derive(Clone, Debug)]
pub struct Config {
    /// Experiment.
    pub mode: Mode,
    /// Connections (keep-alive, rate) or the list of burst sizes.
    pub connections: Vec<usize>,
    /// Run time (keep-alive, rate) or per-burst hard cap (burst).
    pub duration: Option<Duration>,
    /// Total request budget.
    pub requests: Option<u64>,
    /// Event-loop threads.
    pub threads: usize,
    /// Open-loop rate, requests per second.
    pub rate_per_sec: Option<f64>,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Request method.
    pub method: String,
    /// Extra headers, `Name: value` lines without CRLF.
    pub headers: Vec<String>,
    /// Request body bytes.
    pub body: Vec<u8>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Number of loopback source addresses to spread over (1 = let the kernel pick).
    pub sources: u8,
    /// Print JSON.
    pub json: bool,
    /// One request per connection in keep-alive and rate modes.
    pub no_keepalive: bool,
    /// TLS settings for https URLs.
    pub tls: tls::Options,
    /// Targets, used round robin.
    pub urls: Vec<Url>,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Run a load test.
    Run(Box<Config>),
    /// Print usage.
    Help,
    /// Print version.
    Version,
}

/// A bad argument, with a message for the user.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

/// Default burst sizes, the thesis' experiment.
pub const DEFAULT_BURSTS: [usize; 5] = [100, 1000, 2000, 5000, 10000];

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, ArgError> {
    let mut mode: Option<Mode> = None;
    let mut conns: Option<String> = None;
    let mut duration = None;
    let mut requests = None;
    let mut threads = 1usize;
    let mut rate = None;
    let mut pipeline: Option<usize> = None;
    let mut method = "GET".to_string();
    let mut headers = Vec::new();
    let mut body_file: Option<String> = None;
    let mut timeout = Duration::from_secs(10);
    let mut sources: Option<u8> = None;
    let mut json = false;
    let mut no_keepalive = false;
    let mut insecure = false;
    let mut tls_opts = tls::Options::default();
    let mut tls_given = Vec::new();
    let mut raw_urls = Vec::new();

    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if !arg.starts_with('-') || arg == "-" {
            raw_urls.push(arg.clone());
            continue;
        }
        // Split "--name=value" and "-cVALUE" forms.
        let (name, inline): (String, Option<String>) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (arg.clone(), None),
            }
        } else if arg.len() > 2 && arg.is_char_boundary(2) {
            (arg[..2].to_string(), Some(arg[2..].to_string()))
        } else {
            (arg.clone(), None)
        };
        let flag = |inline: &Option<String>| -> Result<(), ArgError> {
            match inline {
                Some(_) => err(format!("option {name} takes no value")),
                None => Ok(()),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--json" => {
                flag(&inline)?;
                json = true;
                continue;
            }
            "--no-keepalive" | "--connection-close" => {
                flag(&inline)?;
                no_keepalive = true;
                continue;
            }
            "-k" | "--insecure" => {
                flag(&inline)?;
                insecure = true;
                tls_given.push(name.clone());
                continue;
            }
            "--resume" => {
                flag(&inline)?;
                tls_opts.resume = true;
                tls_given.push(name.clone());
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => return err(format!("option {name} needs a value")),
            },
        };
        match name.as_str() {
            "--mode" => {
                mode = Some(match value.as_str() {
                    "keepalive" | "keep-alive" => Mode::KeepAlive,
                    "burst" => Mode::Burst,
                    "rate" => Mode::Rate,
                    _ => return err(format!("unknown mode '{value}' (keepalive, burst, rate)")),
                })
            }
            "-c" | "--connections" => conns = Some(value),
            "-d" | "--duration" => duration = Some(parse_duration(&value)?),
            "-n" | "--requests" => requests = Some(parse_count::<u64>(&name, &value)?),
            "-t" | "--threads" => threads = parse_count(&name, &value)?,
            "--rate" => rate = Some(parse_rate(&value)?),
            "--pipeline" => pipeline = Some(parse_count(&name, &value)?),
            "-m" | "--method" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return err(format!("bad method '{value}'"));
                }
                method = value.to_ascii_uppercase();
            }
            "-H" | "--header" => headers.push(parse_header(&value)?),
            "--body" => body_file = Some(value),
            "--timeout" => timeout = parse_duration(&value)?,
            "--sources" => {
                let n: u64 = parse_count(&name, &value)?;
                if n > 254 {
                    return err("--sources must be 1..254");
                }
                sources = Some(n as u8);
            }
            "--cacert" => {
                let pem = std::fs::read(&value)
                    .or_else(|e| err(format!("cannot read --cacert file '{value}': {e}")))?;
                let roots = tls::parse_roots(&pem)
                    .or_else(|e| err(format!("--cacert file '{value}': {e}")))?;
                tls_opts.roots = Some(roots);
                tls_given.push(name.clone());
            }
            "--sni" => {
                tls_opts.sni = Some(value);
                tls_given.push(name.clone());
            }
            "--tls-version" => {
                tls_opts.version = Some(match value.as_str() {
                    "1.2" => tls::Version::Tls12,
                    "1.3" => tls::Version::Tls13,
                    _ => return err(format!("bad --tls-version '{value}' (1.2 or 1.3)")),
                });
                tls_given.push(name.clone());
            }
            "--tls-groups" => {
                tls_opts.groups = value
                    .split(',')
                    .map(|g| {
                        tls::Group::parse(g.trim()).ok_or_else(|| {
                            ArgError(format!(
                                "unknown group '{g}' (x25519, p256, p384, x25519mlkem768)"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                tls_given.push(name.clone());
            }
            _ => return err(format!("unknown option '{arg}'")),
        }
    }

    let mode = match (mode, rate) {
        (Some(m), _) => m,
        (None, Some(_)) => Mode::Rate,
        (None, None) => Mode::KeepAlive,
    };
    if mode == Mode::Rate && rate.is_none() {
        return err("--mode rate needs --rate R");
    }
    if mode != Mode::Rate && rate.is_some() {
        return err(format!("--rate does not apply to {} mode", mode.as_str()));
    }
    if mode == Mode::Burst && (requests.is_some() || pipeline.is_some()) {
        return err("burst mode sends one request per connection: drop -n/--pipeline");
    }
    if no_keepalive && pipeline.is_some_and(|d| d > 1) {
        return err("--no-keepalive sends one request per connection: drop --pipeline");
    }
    if insecure && tls_opts.roots.is_some() {
        return err("--insecure and --cacert contradict each other");
    }
    let connections = match (&conns, mode) {
        (None, Mode::Burst) => DEFAULT_BURSTS.to_vec(),
        (None, _) => vec![10],
        (Some(list), Mode::Burst) => list
            .split(',')
            .map(|c| parse_count("-c", c.trim()))
            .collect::<Result<Vec<usize>, _>>()?,
        (Some(c), _) => vec![parse_count("-c", c)?],
    };
    if mode != Mode::Burst && connections.iter().any(|&c| c < threads) {
        return err(format!("-c must be at least the thread count ({threads})"));
    }
    if raw_urls.is_empty() {
        return err("no URL given");
    }
    let urls = raw_urls
        .iter()
        .map(|u| parse_url(u))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(opt) = tls_given.first() {
        if !urls.iter().any(|u| u.tls) {
            return err(format!("{opt} applies to https:// URLs only"));
        }
    }
    for u in urls.iter().filter(|u| u.tls) {
        tls::server_name(&u.host, tls_opts.sni.as_deref())
            .or_else(|e| err(format!("'{}': {e}", u.raw)))?;
    }
    let body = match body_file {
        Some(path) => std::fs::read(&path)
            .or_else(|e| err(format!("cannot read --body file '{path}': {e}")))?,
        None => Vec::new(),
    };
    if timeout.is_zero() {
        return err("--timeout must be positive");
    }
    if duration.is_some_and(|d| d.is_zero()) {
        return err("--duration must be positive");
    }
    Ok(Command::Run(Box::new(Config {
        mode,
        connections,
        duration,
        requests,
        threads,
        rate_per_sec: rate,
        pipeline: pipeline.unwrap_or(1),
        method,
        headers,
        body,
        timeout,
        sources: sources.unwrap_or(if mode == Mode::Burst { 64 } else { 1 }),
        json,
        no_keepalive: no_keepalive || mode == Mode::Burst,
        tls: tls_opts,
        urls,
    })))
}

fn parse_count<T: std::str::FromStr + PartialOrd + Default>(
    name: &str,
    value: &str,
) -> Result<T, ArgError> {
    match value.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => err(format!("{name} wants a positive integer, got '{value}'")),
    }
}

/// Parses "10s", "500ms", "2m", "1h", "1.5s" or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, ArgError> {
    let v = value.trim();
    let (num, scale_secs) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = v.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (v, 1.0)
    };
    match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * scale_secs < 1e7 => {
            Ok(Duration::from_secs_f64(n * scale_secs))
        }
        _ => err(format!("bad duration '{value}' (try 10s, 500ms, 2m)")),
    }
}

fn parse_rate(value: &str) -> Result<f64, ArgError> {
    let v = value.strip_suffix("/s").unwrap_or(value);
    match v.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => err(format!(
            "bad rate '{value}' (requests per second, e.g. 1000 or 1000/s)"
        )),
    }
}

fn parse_header(value: &str) -> Result<String, ArgError> {
    match value.split_once(':') {
        Some((name, v))
            if !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_graphic())
                && !v.contains(['\r', '\n']) =>
        {
            Ok(format!("{}: {}", name, v.trim()))
        }
        _ => err(format!("bad header '{value}' (want \"Name: value\")")),
    }
}

/// Parses and resolves an `http[s]://host[:port][/path]` URL.
pub fn parse_url(raw: &str) -> Result<Url, ArgError> {
    let (tls, rest) = if let Some(rest) = raw.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = raw.strip_prefix("https://") {
        (true, rest)
    } else {
        return err(format!("'{raw}': URL must start with http:// or https://"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    if authority.contains('@') {
        return err(format!("'{raw}': user info in URLs is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return err(format!("'{raw}': unterminated [IPv6] host"));
        };
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return err(format!("'{raw}': no host"));
    }
    let port = match port {
        None if tls => 443,
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return err(format!("'{raw}': bad port '{p}'")),
        },
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match (bare, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return err(format!("'{raw}': cannot resolve '{bare}': {e}")),
    };
    let Some(addr) = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
    else {
        return err(format!("'{raw}': '{bare}' has no address"));
    };
    Ok(Url {
        raw: raw.to_string(),
        tls,
        host,
        port,
        path,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(s: &str) -> Config {
        match parse(&args(s)) {
            Ok(Command::Run(c)) => *c,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn bad(s: &str) -> String {
        match parse(&args(s)) {
            Err(ArgError(m)) => m,
            other => panic!("{s} should fail: {other:?}"),
        }
    }

    #[test]
    fn wrk_style_line() {
        let c = run("--json -c 50 -d 4s http://127.0.0.1:8080/index.html");
        assert_eq!(c.mode, Mode::KeepAlive);
        assert_eq!(c.connections, vec![50]);
        assert_eq!(c.duration, Some(Duration::from_secs(4)));
        assert!(c.json);
        assert_eq!(c.urls[0].path, "/index.html");
        assert_eq!(c.urls[0].port, 8080);
    }

    #[test]
    fn attached_and_equals_values() {
        let c = run("-c50 -t2 --duration=500ms -HX-A:1 http://localhost:81");
        assert_eq!(c.connections, vec![50]);
        assert_eq!(c.threads, 2);
        assert_eq!(c.duration, Some(Duration::from_millis(500)));
        assert_eq!(c.headers, vec!["X-A: 1".to_string()]);
        assert_eq!(c.urls[0].path, "/");
    }

    #[test]
    fn rate_implies_rate_mode() {
        let c = run("--rate 1000/s http://127.0.0.1:1/");
        assert_eq!(c.mode, Mode::Rate);
        assert_eq!(c.rate_per_sec, Some(1000.0));
    }

    #[test]
    fn burst_list_and_default() {
        let c = run("--mode burst -c 100,1000 http://127.0.0.1:1/");
        assert_eq!(c.connections, vec![100, 1000]);
        assert_eq!(c.sources, 64);
        let c = run("--mode burst http://127.0.0.1:1/");
        assert_eq!(c.connections, DEFAULT_BURSTS.to_vec());
    }

    #[test]
    fn bad_arguments_are_reported() {
        assert!(bad("").contains("no URL"));
        assert!(bad("-c 0 http://127.0.0.1:1/").contains("positive"));
        assert!(bad("-c x http://127.0.0.1:1/").contains("positive"));
        assert!(bad("-d 4q http://127.0.0.1:1/").contains("duration"));
        assert!(bad("--mode fast http://127.0.0.1:1/").contains("mode"));
        assert!(bad("--mode rate http://127.0.0.1:1/").contains("--rate"));
        assert!(bad("--rate 0 http://127.0.0.1:1/").contains("rate"));
        assert!(bad("--frobnicate http://127.0.0.1:1/").contains("unknown option"));
        assert!(bad("http://127.0.0.1:1/ -c").contains("needs a value"));
        assert!(bad("ftp://127.0.0.1/").contains("https://"));
        assert!(bad("http://127.0.0.1:99999/").contains("port"));
        assert!(bad("-H novalue http://127.0.0.1:1/").contains("header"));
        assert!(bad("--mode burst -n 5 http://127.0.0.1:1/").contains("burst"));
        assert!(bad("-c 1,2 http://127.0.0.1:1/").contains("positive"));
        assert!(bad("-t 4 -c 2 http://127.0.0.1:1/").contains("thread"));
        assert!(bad("--body /nonexistent/x http://127.0.0.1:1/").contains("--body"));
        assert!(bad("--json=1 http://127.0.0.1:1/").contains("no value"));
    }

    #[test]
    fn https_and_its_options() {
        let c = run("--no-keepalive --resume --sni a.test --tls-version 1.2 https://127.0.0.1/x");
        let u = &c.urls[0];
        assert!(u.tls);
        assert_eq!((u.port, u.path.as_str()), (443, "/x"));
        assert!(c.no_keepalive && c.tls.resume);
        assert_eq!(c.tls.sni.as_deref(), Some("a.test"));
        assert_eq!(c.tls.version, Some(tls::Version::Tls12));
        assert!(c.tls.roots.is_none());
        let c = run("-k --tls-groups x25519,P-256 https://localhost:8443");
        assert_eq!(c.tls.groups, vec![tls::Group::X25519, tls::Group::P256]);
        assert!(!c.no_keepalive);
        assert!(run("--mode burst http://127.0.0.1:1/").no_keepalive);
        assert!(!run("http://127.0.0.1:1/").urls[0].tls);
        assert!(bad("--resume http://127.0.0.1:1/").contains("https"));
        assert!(bad("--tls-version 1.1 https://127.0.0.1/").contains("1.2 or 1.3"));
        assert!(bad("--tls-groups ffdhe2048 https://127.0.0.1/").contains("group"));
        assert!(bad("--sni a..b https://127.0.0.1/").contains("server name"));
        assert!(bad("--cacert /nonexistent/ca https://127.0.0.1/").contains("--cacert"));
        assert!(bad("--cacert /dev/null https://127.0.0.1/").contains("no certificate"));
        assert!(bad("--no-keepalive --pipeline 2 http://127.0.0.1:1/").contains("pipeline"));
        assert!(bad("--no-keepalive=1 http://127.0.0.1:1/").contains("no value"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn url_query_and_ipv6() {
        let u = parse_url("http://127.0.0.1:8080?x=1").unwrap();
        assert_eq!(u.path, "/?x=1");
        let u = parse_url("http://[::1]:8080/a").unwrap();
        assert_eq!(u.host, "[::1]");
        assert!(u.addr.is_ipv6());
    }
}
