//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the frame types and
//! flags we know, error codes, and writers that append whole frames to an
//! output buffer. No state: the connection (`conn`) decides what to send.

/// What a client sends first on an HTTP/2 connection (§3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 9;
/// The initial window of every stream and of the connection (§6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;
/// The smallest (and initial) SETTINGS_MAX_FRAME_SIZE.
pub const MIN_MAX_FRAME: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE (2^24 - 1).
pub const MAX_MAX_FRAME: u32 = (1 << 24) - 1;
/// The largest window (2^31 - 1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame type codes (§6).
pub mod kind {
    /// DATA
    pub const DATA: u8 = 0x0;
    /// HEADERS
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY (deprecated, still parsed)
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (a server's only; a client must not send it)
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING
    pub const PING: u8 = 0x6;
    /// GOAWAY
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6).
pub mod flag {
    /// DATA, HEADERS: the last frame the sender sends on the stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION: the header block is complete.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS: a pad length byte and padding.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: a priority block (5 bytes) precedes the fragment.
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (§6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// Graceful shutdown, or a stream the server answered early.
    NoError = 0x0,
    /// A protocol rule was broken.
    Protocol = 0x1,
    /// Our own failure.
    Internal = 0x2,
    /// A flow-control window was exceeded or overflowed.
    FlowControl = 0x3,
    /// SETTINGS were not acknowledged in time.
    SettingsTimeout = 0x4,
    /// A frame on a closed stream.
    StreamClosed = 0x5,
    /// A frame of the wrong size.
    FrameSize = 0x6,
    /// The stream was refused before any processing.
    RefusedStream = 0x7,
    /// The stream is no longer needed.
    Cancel = 0x8,
    /// The header compression state cannot be kept.
    Compression = 0x9,
    /// CONNECT's connection failed.
    Connect = 0xa,
    /// The peer behaves abusively (floods, resets).
    EnhanceYourCalm = 0xb,
    /// TLS below what HTTP/2 requires.
    InadequateSecurity = 0xc,
    /// Use HTTP/1.1 for this request.
    Http11Required = 0xd,
}

impl ErrorCode {
    /// The code's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NoError => "NO_ERROR",
            ErrorCode::Protocol => "PROTOCOL_ERROR",
            ErrorCode::Internal => "INTERNAL_ERROR",
            ErrorCode::FlowControl => "FLOW_CONTROL_ERROR",
            ErrorCode::SettingsTimeout => "SETTINGS_TIMEOUT",
            ErrorCode::StreamClosed => "STREAM_CLOSED",
            ErrorCode::FrameSize => "FRAME_SIZE_ERROR",
            ErrorCode::RefusedStream => "REFUSED_STREAM",
            ErrorCode::Cancel => "CANCEL",
            ErrorCode::Compression => "COMPRESSION_ERROR",
            ErrorCode::Connect => "CONNECT_ERROR",
            ErrorCode::EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            ErrorCode::InadequateSecurity => "INADEQUATE_SECURITY",
            ErrorCode::Http11Required => "HTTP_1_1_REQUIRED",
        }
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: u32,
    /// Type code.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (the reserved bit cleared).
    pub stream: u32,
}

impl FrameHeader {
    /// Parse the first 9 bytes of `b` (None: fewer than 9).
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let h = b.get(..HEADER_LEN)?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_WINDOW,
        })
    }

    /// Whether `f` is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// Append a frame header.
pub fn put_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let l = (len as u32).to_be_bytes();
    out.extend_from_slice(&[l[1], l[2], l[3], kind, flags]);
    out.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
}

/// Append a SETTINGS frame with `pairs`.
pub fn put_settings(out: &mut Vec<u8>, pairs: &[(u16, u32)]) {
    put_header(out, pairs.len() * 6, kind::SETTINGS, 0, 0);
    for (id, v) in pairs {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Append a SETTINGS acknowledgement.
pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_header(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Append a PING (or its ACK) with `data`.
pub fn put_ping(out: &mut Vec<u8>, ack: bool, data: [u8; 8]) {
    put_header(out, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    out.extend_from_slice(&data);
}

/// Append a GOAWAY naming the last stream processed.
pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode) {
    put_header(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&(code as u32).to_be_bytes());
}

/// Append a RST_STREAM.
pub fn put_rst(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    put_header(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&(code as u32).to_be_bytes());
}

/// Append a WINDOW_UPDATE (`stream` 0: the connection's).
pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_header(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

/// Append DATA frames carrying `data` (split at `max_frame`); END_STREAM
/// on the last when `end`. An empty `data` with `end` is one empty frame.
pub fn put_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end: bool, max_frame: usize) {
    if data.is_empty() {
        if end {
            put_header(out, 0, kind::DATA, flag::END_STREAM, stream);
        }
        return;
    }
    let mut chunks = data.chunks(max_frame.max(1)).peekable();
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last && end { flag::END_STREAM } else { 0 };
        put_header(out, c.len(), kind::DATA, flags, stream);
        out.extend_from_slice(c);
    }
}

/// Append a HEADERS frame with the header block `block`, followed by
/// CONTINUATION frames when it is longer than `max_frame`.
pub fn put_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let max_frame = max_frame.max(1);
    let first = block.len().min(max_frame);
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if first == block.len() {
        flags |= flag::END_HEADERS;
    }
    put_header(out, first, kind::HEADERS, flags, stream);
    out.extend_from_slice(&block[..first]);
    let mut rest = &block[first..];
    while !rest.is_empty() {
        let n = rest.len().min(max_frame);
        let f = if n == rest.len() {
            flag::END_HEADERS
        } else {
            0
        };
        put_header(out, n, kind::CONTINUATION, f, stream);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_the_reserved_bit_is_ignored() {
        let mut out = Vec::new();
        put_header(&mut out, 0x1234, kind::HEADERS, flag::END_HEADERS, 7);
        assert_eq!(out, [0, 0x12, 0x34, 1, 4, 0, 0, 0, 7]);
        let h = FrameHeader::parse(&out).unwrap();
        assert_eq!((h.len, h.kind, h.flags, h.stream), (0x1234, 1, 4, 7));
        out[5] |= 0x80;
        assert_eq!(FrameHeader::parse(&out).unwrap().stream, 7);
        assert!(FrameHeader::parse(&out[..8]).is_none());
    }

    #[test]
    fn data_is_split_at_the_frame_size_with_end_stream_on_the_last() {
        let mut out = Vec::new();
        put_data(&mut out, 3, &[7u8; 10], true, 4);
        let mut frames = Vec::new();
        let mut b = &out[..];
        while let Some(h) = FrameHeader::parse(b) {
            frames.push((h.len, h.flags));
            b = &b[HEADER_LEN + h.len as usize..];
        }
        assert_eq!(frames, [(4, 0), (4, 0), (2, flag::END_STREAM)]);
    }

    #[test]
    fn a_long_header_block_goes_on_in_continuation_frames() {
        let mut out = Vec::new();
        put_headers(&mut out, 1, &[1u8; 9], false, 4);
        let h = FrameHeader::parse(&out).unwrap();
        assert_eq!((h.kind, h.len, h.flags), (kind::HEADERS, 4, 0));
        let c2 = FrameHeader::parse(&out[13 + 13..]).unwrap();
        assert_eq!(
            (c2.kind, c2.len, c2.flags),
            (kind::CONTINUATION, 1, flag::END_HEADERS)
        );
    }
}
