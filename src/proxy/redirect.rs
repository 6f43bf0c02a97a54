//! `proxy_redirect`: the `Location` and `Refresh` (its `url=` part) of an
//! upstream response rewritten by the location's rules, the first that
//! matches: a prefix (with variables) replaced by the replacement, or a
//! regex (`~`, `~*`) whose match replaces the whole value, `$1`..`$9`
//! being its captures. nginx's `default` is resolved at load into a prefix
//! rule (the `proxy_pass` URL to the location's path).

use crate::config::{ProxyRedirect, RedirectFrom};
use crate::http::vars::{self, ReqVars, RespVars};

/// The rewritten `value` of a `Location` (or the URL of a `Refresh` when
/// `refresh`), or `None` when no rule matches.
pub fn rewrite(
    rules: &[ProxyRedirect],
    value: &[u8],
    refresh: bool,
    req: &ReqVars<'_>,
) -> Option<Vec<u8>> {
    if rules.is_empty() {
        return None;
    }
    let (prefix, url) = if refresh {
        let at = value
            .windows(4)
            .position(|w| w.eq_ignore_ascii_case(b"url="))?;
        value.split_at(at + 4)
    } else {
        (&b""[..], value)
    };
    let none = RespVars::default();
    let mut out = prefix.to_vec();
    for r in rules {
        match &r.from {
            RedirectFrom::Prefix(t) => {
                let mut pattern = Vec::new();
                vars::eval(t, req, &none, &mut pattern);
                if let Some(rest) = url.strip_prefix(&pattern[..]) {
                    vars::eval(&r.to, req, &none, &mut out);
                    out.extend_from_slice(rest);
                    return Some(out);
                }
            }
            RedirectFrom::Regex(re) => {
                let Some(c) = re.captures(url) else {
                    continue;
                };
                let spans: Vec<(u32, u32)> = (0..c.len())
                    .map(|i| {
                        c.get(i)
                            .map_or((0, 0), |m| (m.start() as u32, m.end() as u32))
                    })
                    .collect();
                // `$1`.. are spans of `path`: the header value here.
                let mut v = *req;
                v.path = url;
                v.captures = &spans;
                vars::eval(&r.to, &v, &none, &mut out);
                return Some(out);
            }
        }
    }
    None
}
