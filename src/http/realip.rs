//! The real client address (nginx's realip module): when the connection
//! comes from a trusted address (`set_real_ip_from`), the address in
//! `real_ip_header` (`X-Real-IP`, `X-Forwarded-For` read from the right,
//! skipping trusted addresses with `real_ip_recursive on`, or any header)
//! becomes `$remote_addr` — and the address `allow`/`deny`, the limits and
//! the waiting room key on. `$realip_remote_addr` keeps the connection's.
//! As nginx: the server level's settings first (its post-read phase); a
//! location's only when those changed nothing (its preaccess phase).

use crate::config::{RealIpConf, RealIpHeader};
use crate::http::ctx::HttpCtx;
use crate::http::handler::ConnInfo;
use crate::http::request::{at, header_fields, Head};
use crate::http::uri;
use std::net::{IpAddr, SocketAddr};

/// The connection as the request's location sees it, when its real-IP
/// settings replace the address (`None`: unchanged, or not configured).
pub fn resolve<'t>(
    ctx: &HttpCtx,
    info: &ConnInfo<'t>,
    buf: &[u8],
    head: &Head,
) -> Option<ConnInfo<'t>> {
    let cfg = &ctx.site.cfg;
    let target = at(buf, head.target);
    let host = head
        .host
        .map(|h| at(buf, h))
        .or_else(|| uri::split_target(target).ok().and_then(|t| t.host));
    let si = ctx.site.find_server(info.listen_idx, host);
    let server = cfg.http.servers.get(si)?;
    if !server.realip {
        return None;
    }
    let fields = &buf[..head.len];
    let from_server = server
        .realip_server
        .as_ref()
        .and_then(|c| real_addr(c, info.peer, fields));
    let real = match from_server {
        Some(a) => a,
        None => {
            let mut path = Vec::new();
            let t = uri::split_target(target).ok()?;
            uri::normalize_path(t.path, &mut path).ok()?;
            let li = ctx.site.find_location(si, &path, &mut Vec::new());
            let conf = server.locations.get(li)?.realip.as_ref()?;
            real_addr(conf, info.peer, fields)?
        }
    };
    let old = info.vars.peer;
    let mut vars = info.vars;
    vars.peer = SocketAddr::new(real, 0);
    vars.realip_peer = Some(old);
    Some(ConnInfo {
        peer: real,
        vars,
        listen_idx: info.listen_idx,
        requests: info.requests,
        body_pending: info.body_pending,
        tls: info.tls,
    })
}

/// The address `conf` takes from the head's fields for a connection from
/// `peer` (`None`: `peer` is not trusted, or no usable address).
pub fn real_addr(conf: &RealIpConf, peer: IpAddr, fields: &[u8]) -> Option<IpAddr> {
    if !trusted(conf, peer) {
        return None;
    }
    let name: &[u8] = match &conf.header {
        RealIpHeader::XRealIp => b"x-real-ip",
        RealIpHeader::XForwardedFor => b"x-forwarded-for",
        RealIpHeader::Other(n) => n.as_bytes(),
    };
    if conf.header != RealIpHeader::XForwardedFor {
        let v = header_fields(fields)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))?
            .1;
        return parse_addr(v);
    }
    // Every X-Forwarded-For line, in order, as one list read from the right.
    let mut found = None;
    let lines: Vec<&[u8]> = header_fields(fields)
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect();
    for line in lines.iter().rev() {
        for item in line.rsplit(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            let Some(addr) = parse_addr(item) else {
                return found;
            };
            found = Some(addr);
            if !conf.recursive || !trusted(conf, addr) {
                return found;
            }
        }
    }
    found
}

fn trusted(conf: &RealIpConf, ip: IpAddr) -> bool {
    conf.from.iter().any(|c| c.contains(ip))
}

/// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
fn parse_addr(v: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(v.trim_ascii()).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(header: RealIpHeader, recursive: bool) -> RealIpConf {
        let from = vec![
            crate::config::Cidr {
                addr: ip("127.0.0.0"),
                prefix_len: 8,
            },
            crate::config::Cidr {
                addr: ip("10.0.0.0"),
                prefix_len: 8,
            },
        ];
        RealIpConf {
            from,
            unix: false,
            header,
            recursive,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nX-Real-IP: 192.0.2.9\r\n\
        X-Forwarded-For: 203.0.113.1, 10.1.1.1\r\nX-Forwarded-For: 10.2.2.2\r\n\r\n";

    #[test]
    fn untrusted_peers_keep_their_address() {
        let c = conf(RealIpHeader::XRealIp, false);
        assert_eq!(real_addr(&c, ip("192.0.2.1"), HEAD), None);
        assert_eq!(real_addr(&c, ip("127.0.0.1"), HEAD), Some(ip("192.0.2.9")));
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_and_recursively_past_trusted_hops() {
        let c = conf(RealIpHeader::XForwardedFor, false);
        assert_eq!(real_addr(&c, ip("127.0.0.1"), HEAD), Some(ip("10.2.2.2")));
        let c = conf(RealIpHeader::XForwardedFor, true);
        assert_eq!(
            real_addr(&c, ip("127.0.0.1"), HEAD),
            Some(ip("203.0.113.1"))
        );
        // All trusted: the leftmost.
        let h = b"GET / HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n";
        assert_eq!(real_addr(&c, ip("127.0.0.1"), h), Some(ip("10.0.0.1")));
    }

    #[test]
    fn garbage_and_ports_in_the_header() {
        let c = conf(RealIpHeader::Other("x-client".into()), false);
        let h = b"GET / HTTP/1.1\r\nX-Client: [2001:db8::5]:443\r\n\r\n";
        assert_eq!(real_addr(&c, ip("127.0.0.1"), h), Some(ip("2001:db8::5")));
        let h = b"GET / HTTP/1.1\r\nX-Client: not-an-ip\r\n\r\n";
        assert_eq!(real_addr(&c, ip("127.0.0.1"), h), None);
    }
}
