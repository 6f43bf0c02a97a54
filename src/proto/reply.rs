//! A response head as a value: status, fields, framing. The content phase
//! builds it (a local answer, an upstream's head, a cache hit), the header
//! filter changes it (`add_header`, the waiting room's `Set-Cookie`), and it
//! is serialized once, at the end ([`ReplyHead::write_h1`]; HTTP/2 will
//! encode the same value). Its storage — one byte arena and one index — is
//! kept from response to response: no allocation per response once warm.

use crate::proto::head::{put_u64, reason};

/// How the body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No framing field (a bodiless status, or a length the head already
    /// carries as a field, as for HEAD through the proxy).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Delimited by closing the connection (no framing field).
    Close,
}

/// One field: its name and value as spans of the arena.
#[derive(Debug, Clone, Copy)]
struct Field {
    start: u32,
    name_end: u32,
    end: u32,
}

/// A response head being built.
#[derive(Debug)]
pub struct ReplyHead {
    /// Status code.
    pub status: u16,
    /// Body framing.
    pub framing: Framing,
    /// Keep the connection open after the response.
    pub keep_alive: bool,
    /// The reason phrase, when not the standard one (an upstream's): a span.
    reason: Option<(u32, u32)>,
    buf: Vec<u8>,
    fields: Vec<Field>,
}

impl Default for ReplyHead {
    fn default() -> Self {
        ReplyHead::new()
    }
}

impl ReplyHead {
    /// An empty 200 head (allocates nothing until a field is added).
    pub fn new() -> ReplyHead {
        ReplyHead {
            status: 200,
            framing: Framing::None,
            keep_alive: false,
            reason: None,
            buf: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// Start a new head with `status`, keeping the storage.
    pub fn reset(&mut self, status: u16, framing: Framing, keep_alive: bool) {
        self.status = status;
        self.framing = framing;
        self.keep_alive = keep_alive;
        self.reason = None;
        self.buf.clear();
        self.fields.clear();
    }

    /// Use `r` as the reason phrase (an upstream's) instead of the standard one.
    pub fn set_reason(&mut self, r: &[u8]) {
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(r);
        self.reason = Some((start, self.buf.len() as u32));
    }

    /// Add a field.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.push_with(name, |v| v.extend_from_slice(value));
    }

    /// Add a field with a decimal value.
    pub fn push_u64(&mut self, name: &[u8], n: u64) {
        self.push_with(name, |v| put_u64(v, n));
    }

    /// Add a field whose value `write` appends to the buffer it is given
    /// (evaluated in place: no temporary). A value left empty drops the
    /// field; returns whether it was added.
    pub fn push_with(&mut self, name: &[u8], write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let start = self.buf.len();
        self.buf.extend_from_slice(name);
        let name_end = self.buf.len();
        write(&mut self.buf);
        if self.buf.len() == name_end {
            self.buf.truncate(start);
            return false;
        }
        self.fields.push(Field {
            start: start as u32,
            name_end: name_end as u32,
            end: self.buf.len() as u32,
        });
        true
    }

    /// The fields in order, as (name, value).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|f| {
            (
                &self.buf[f.start as usize..f.name_end as usize],
                &self.buf[f.name_end as usize..f.end as usize],
            )
        })
    }

    /// The first field called `name` (case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Drop every field called `name` (case-insensitive).
    pub fn remove(&mut self, name: &[u8]) {
        let buf = &self.buf;
        self.fields
            .retain(|f| !buf[f.start as usize..f.name_end as usize].eq_ignore_ascii_case(name));
    }

    /// Append `suffix` to the value of the first field called `name`
    /// (case-insensitive); false when there is none. The field moves last.
    pub fn extend_value(&mut self, name: &[u8], suffix: impl FnOnce(&mut Vec<u8>)) -> bool {
        let buf = &self.buf;
        let Some(i) = self
            .fields
            .iter()
            .position(|f| buf[f.start as usize..f.name_end as usize].eq_ignore_ascii_case(name))
        else {
            return false;
        };
        let f = self.fields.remove(i);
        let start = self.buf.len();
        self.buf
            .extend_from_within(f.start as usize..f.end as usize);
        let name_end = start + (f.name_end - f.start) as usize;
        suffix(&mut self.buf);
        self.fields.push(Field {
            start: start as u32,
            name_end: name_end as u32,
            end: self.buf.len() as u32,
        });
        true
    }

    /// The reason phrase sent.
    pub fn reason(&self) -> &[u8] {
        match self.reason {
            Some((s, e)) => &self.buf[s as usize..e as usize],
            None => reason(self.status).as_bytes(),
        }
    }

    /// Serialize as an HTTP/1.1 head: status line, `Server`, `Date`, the
    /// fields in order, the framing field, `Connection`, the blank line.
    pub fn write_h1(&self, server: &[u8], date: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        put_u64(out, self.status as u64);
        out.push(b' ');
        out.extend_from_slice(self.reason());
        out.extend_from_slice(b"\r\nServer: ");
        out.extend_from_slice(server);
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
        for f in &self.fields {
            out.extend_from_slice(&self.buf[f.start as usize..f.name_end as usize]);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&self.buf[f.name_end as usize..f.end as usize]);
            out.extend_from_slice(b"\r\n");
        }
        match self.framing {
            Framing::Length(n) => {
                out.extend_from_slice(b"Content-Length: ");
                put_u64(out, n);
                out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            Framing::None | Framing::Close => {}
        }
        out.extend_from_slice(if self.keep_alive && self.framing != Framing::Close {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8] = b"Thu, 03 Dec 2026 10:00:00 GMT";

    fn h1(h: &ReplyHead) -> String {
        let mut out = Vec::new();
        h.write_h1(b"sluice", DATE, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_head_is_a_value_filters_change_before_it_is_written() {
        let mut h = ReplyHead::new();
        h.reset(200, Framing::Length(5), true);
        h.push(b"Content-Type", b"text/plain");
        h.push(b"X-A", b"1");
        h.push_u64(b"X-N", 42);
        // A filter: one field replaced, one added, an empty one dropped.
        h.remove(b"x-a");
        assert!(h.push_with(b"X-B", |v| v.extend_from_slice(b"two")));
        assert!(!h.push_with(b"X-Empty", |_| {}));
        assert_eq!(h.get(b"content-type"), Some(&b"text/plain"[..]));
        assert_eq!(h.get(b"X-A"), None);
        assert_eq!(
            h1(&h),
            "HTTP/1.1 200 OK\r\nServer: sluice\r\nDate: Thu, 03 Dec 2026 10:00:00 GMT\r\n\
             Content-Type: text/plain\r\nX-N: 42\r\nX-B: two\r\nContent-Length: 5\r\n\
             Connection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn reset_keeps_nothing_of_the_last_head_and_framing_decides_the_connection() {
        let mut h = ReplyHead::new();
        h.reset(502, Framing::Chunked, true);
        h.set_reason(b"Upstream Said So");
        h.push(b"X-Old", b"1");
        assert!(h1(&h).starts_with("HTTP/1.1 502 Upstream Said So\r\n"));
        assert!(h1(&h).contains("Transfer-Encoding: chunked\r\n"));
        h.reset(404, Framing::Close, true);
        let s = h1(&h);
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(!s.contains("X-Old") && !s.contains("Content-Length"), "{s}");
        assert!(s.ends_with("Connection: close\r\n\r\n"), "{s}");
    }
}
