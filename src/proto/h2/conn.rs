//! One HTTP/2 server connection as a sans-I/O state machine (RFC 9113):
//! bytes the client sent go in ([`H2::recv`]), frames to send come out,
//! appended to the caller's write buffer. It owns the streams (their state,
//! windows, request head and buffered body) and carries the caller's
//! per-stream data `S`. What a stream *means* — running its request,
//! producing its response — is the caller's: it learns of requests and
//! body bytes through [`Event`]s and answers with `send_headers` /
//! `send_data`.
//!
//! Defences against the known abuses live here, each a connection error
//! (GOAWAY, then the caller closes) for the one client only:
//! - rapid reset (CVE-2023-44487): streams the client cancels before their
//!   answer are counted; too many against those answered ends it;
//! - CONTINUATION flood: a header block is capped in bytes and frames;
//! - HPACK bomb: the decoded size of one block is capped (`MAX_DECODED`);
//! - SETTINGS / PING / PRIORITY / empty-DATA floods: a token bucket;
//! - stream-id games: ids must be odd and rise; `max_requests` streams per
//!   connection, then a graceful GOAWAY;
//! - zero-window stalls are the caller's `send_timeout` (`blocked_since`).

use super::fields::ReqFields;
use super::frame::{self, flag, kind, setting, ErrorCode, FrameHeader, HEADER_LEN};
use super::hpack;

/// Control frames (PING, SETTINGS, PRIORITY, empty DATA) a client may send
/// in a burst; the bucket refills at `FLOOD_REFILL_PER_SEC`.
const FLOOD_BURST: u32 = 1000;
/// Refill of the flood bucket.
const FLOOD_REFILL_PER_SEC: u64 = 100;
/// CONTINUATION frames one header block may take.
const MAX_CONTINUATIONS: u32 = 64;
/// Decoded bytes one header block may expand to before the connection is
/// taken for an HPACK bomb (well past any limit a real request reaches).
const MAX_DECODED: usize = 1 << 20;
/// Cancelled streams tolerated before any was answered.
const RESET_ALLOWANCE: u64 = 100;
/// How long the client has to acknowledge our SETTINGS.
pub const SETTINGS_TIMEOUT_MS: u64 = 10_000;

/// What the server allows (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// SETTINGS_MAX_CONCURRENT_STREAMS (`http2_max_concurrent_streams`).
    pub max_concurrent_streams: u32,
    /// The largest field, name plus value (`http2_max_field_size`, or a
    /// `large_client_header_buffers` buffer).
    pub max_field_bytes: usize,
    /// The largest request head (all `large_client_header_buffers`).
    pub max_header_list_bytes: usize,
    /// Streams per connection (`keepalive_requests`), then GOAWAY.
    pub max_requests: u64,
    /// The connection's receive window (the stream windows stay 65535).
    pub conn_window: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_streams: 128,
            max_field_bytes: 8192,
            max_header_list_bytes: 32768,
            max_requests: 1000,
            conn_window: 1 << 20,
        }
    }
}

/// What the caller must look at after `recv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A stream's request head arrived (see `Stream::head`; it may be
    /// malformed or too large: the caller answers 400 / 431).
    Request(u32),
    /// Body bytes (or the end of the body) arrived on a stream.
    Data(u32),
    /// The stream was reset (by the client, or by us for its error): the
    /// caller drops what it does for it, then calls `remove`.
    Reset(u32),
}

/// One stream.
pub struct Stream<S> {
    /// Its identifier.
    pub id: u32,
    /// The client ended its side (END_STREAM seen).
    pub recv_closed: bool,
    /// We ended our side (END_STREAM sent).
    pub send_closed: bool,
    /// Reset (sent or received): nothing more goes out.
    pub reset: bool,
    /// The request head.
    pub head: ReqFields,
    /// Received body bytes the caller has not taken yet.
    pub body: Vec<u8>,
    /// Body bytes received so far (checked against content-length).
    pub body_total: u64,
    /// The caller's data.
    pub app: S,
    send_window: i64,
    recv_window: i64,
    recv_unacked: u32,
    /// The response started (HEADERS sent).
    pub answered: bool,
}

/// Why the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    /// The GOAWAY's code.
    pub code: ErrorCode,
    /// What happened, for the log.
    pub why: &'static str,
}

fn err(code: ErrorCode, why: &'static str) -> ConnError {
    ConnError { code, why }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the client's preface.
    Preface,
    /// The preface came; the first frame must be SETTINGS.
    FirstSettings,
    /// Frames flow.
    Open,
    /// A connection error: GOAWAY written, nothing more is read.
    Closed,
}

/// A header block being received (HEADERS + CONTINUATION).
struct Block {
    stream: u32,
    end_stream: bool,
    frames: u32,
    bytes: Vec<u8>,
}

/// The connection.
pub struct H2<S> {
    state: State,
    limits: Limits,
    decoder: hpack::Decoder,
    /// The streams (at most a few hundred: searched linearly).
    pub streams: Vec<Stream<S>>,
    /// Events since the caller last drained them.
    pub events: Vec<Event>,
    last_stream: u32,
    /// GOAWAY sent with this last stream id: later streams are ignored.
    goaway_last: Option<u32>,
    /// The client sent GOAWAY.
    pub peer_goaway: bool,
    peer_initial_window: u32,
    peer_max_frame: u32,
    send_window: i64,
    recv_window: i64,
    recv_unacked: u32,
    block: Option<Block>,
    spare_block: Vec<u8>,
    /// When our SETTINGS went out unacknowledged (0: acknowledged).
    settings_sent_ms: u64,
    flood_tokens: u32,
    flood_ms: u64,
    peer_resets: u64,
    /// Streams answered to the end.
    pub streams_done: u64,
    /// Streams the client opened.
    pub streams_opened: u64,
    /// Data for some stream waits for window since this monotonic ms (0: none).
    pub blocked_since_ms: u64,
}

impl<S: Default> H2<S> {
    /// A connection; `start` writes our SETTINGS.
    pub fn new(limits: Limits) -> H2<S> {
        H2 {
            state: State::Preface,
            limits,
            decoder: hpack::Decoder::new(),
            streams: Vec::new(),
            events: Vec::new(),
            last_stream: 0,
            goaway_last: None,
            peer_goaway: false,
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::MIN_MAX_FRAME,
            send_window: frame::DEFAULT_WINDOW as i64,
            recv_window: frame::DEFAULT_WINDOW as i64,
            recv_unacked: 0,
            block: None,
            spare_block: Vec::new(),
            settings_sent_ms: 0,
            flood_tokens: FLOOD_BURST,
            flood_ms: 0,
            peer_resets: 0,
            streams_done: 0,
            streams_opened: 0,
            blocked_since_ms: 0,
        }
    }

    /// Our connection preface: SETTINGS, and a larger connection window.
    pub fn start(&mut self, out: &mut Vec<u8>, now_ms: u64) {
        frame::put_settings(
            out,
            &[
                (
                    setting::MAX_CONCURRENT_STREAMS,
                    self.limits.max_concurrent_streams,
                ),
                (
                    setting::MAX_HEADER_LIST_SIZE,
                    self.limits.max_header_list_bytes as u32,
                ),
            ],
        );
        let more = self
            .limits
            .conn_window
            .saturating_sub(frame::DEFAULT_WINDOW);
        if more > 0 {
            frame::put_window_update(out, 0, more);
            self.recv_window += more as i64;
        }
        self.settings_sent_ms = now_ms.max(1);
        self.flood_ms = now_ms;
    }

    /// Whether the connection is past a connection error.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether the client's preface has arrived.
    pub fn preface_done(&self) -> bool {
        !matches!(self.state, State::Preface)
    }

    /// A header block is half received.
    pub fn in_header_block(&self) -> bool {
        self.block.is_some()
    }

    /// GOAWAY was sent.
    pub fn goaway_sent(&self) -> bool {
        self.goaway_last.is_some()
    }

    /// The stream `id`.
    pub fn stream(&mut self, id: u32) -> Option<&mut Stream<S>> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    fn index(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// Open streams (the ones `max_concurrent_streams` counts).
    pub fn active(&self) -> usize {
        self.streams.iter().filter(|s| !s.reset).count()
    }

    /// Parse what `input` holds; returns the bytes consumed (a partial frame
    /// stays for next time). Frames to send are appended to `out`. On Err
    /// the GOAWAY is in `out`: flush it and close.
    pub fn recv(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        now_ms: u64,
    ) -> Result<usize, ConnError> {
        let r = self.recv_frames(input, out, now_ms);
        if let Err(e) = r {
            if self.state != State::Closed {
                frame::put_goaway(out, self.last_stream, e.code);
                self.state = State::Closed;
            }
        }
        r
    }

    fn recv_frames(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        now_ms: u64,
    ) -> Result<usize, ConnError> {
        let mut pos = 0;
        if self.state == State::Closed {
            return Ok(input.len());
        }
        if self.state == State::Preface {
            let n = input.len().min(frame::PREFACE.len());
            if input[..n] != frame::PREFACE[..n] {
                return Err(err(ErrorCode::Protocol, "bad connection preface"));
            }
            if n < frame::PREFACE.len() {
                return Ok(0);
            }
            pos = n;
            self.state = State::FirstSettings;
        }
        self.refill(now_ms);
        while let Some(h) = FrameHeader::parse(&input[pos..]) {
            if h.len > frame::MIN_MAX_FRAME {
                return Err(err(
                    ErrorCode::FrameSize,
                    "frame larger than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            let end = pos + HEADER_LEN + h.len as usize;
            if input.len() < end {
                break;
            }
            let payload = &input[pos + HEADER_LEN..end];
            pos = end;
            if self.state == State::FirstSettings {
                if h.kind != kind::SETTINGS || h.has(flag::ACK) {
                    return Err(err(ErrorCode::Protocol, "first frame is not SETTINGS"));
                }
                self.state = State::Open;
            }
            self.frame(h, payload, out, now_ms)?;
        }
        Ok(pos)
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.flood_ms);
        let add = elapsed * FLOOD_REFILL_PER_SEC / 1000;
        if add > 0 {
            self.flood_tokens = (self.flood_tokens as u64 + add).min(FLOOD_BURST as u64) as u32;
            self.flood_ms = now_ms;
        }
    }

    fn flood(&mut self, what: &'static str) -> Result<(), ConnError> {
        if self.flood_tokens == 0 {
            log::info!("http2 flood: {what}");
            return Err(err(ErrorCode::EnhanceYourCalm, what));
        }
        self.flood_tokens -= 1;
        Ok(())
    }

    fn frame(
        &mut self,
        h: FrameHeader,
        p: &[u8],
        out: &mut Vec<u8>,
        now_ms: u64,
    ) -> Result<(), ConnError> {
        if let Some(b) = &self.block {
            if h.kind != kind::CONTINUATION || h.stream != b.stream {
                return Err(err(ErrorCode::Protocol, "frame inside a header block"));
            }
        }
        match h.kind {
            kind::DATA => self.data(h, p, out),
            kind::HEADERS => self.headers(h, p, out),
            kind::CONTINUATION => self.continuation(h, p, out),
            kind::PRIORITY => {
                if h.stream == 0 {
                    return Err(err(ErrorCode::Protocol, "PRIORITY on stream 0"));
                }
                if p.len() != 5 {
                    self.stream_error(h.stream, ErrorCode::FrameSize, out);
                    return Ok(());
                }
                if u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & frame::MAX_WINDOW == h.stream {
                    self.stream_error(h.stream, ErrorCode::Protocol, out);
                }
                self.flood("PRIORITY")
            }
            kind::RST_STREAM => self.rst(h, p),
            kind::SETTINGS => self.settings(h, p, out, now_ms),
            kind::PUSH_PROMISE => Err(err(ErrorCode::Protocol, "PUSH_PROMISE from a client")),
            kind::PING => {
                if h.stream != 0 {
                    return Err(err(ErrorCode::Protocol, "PING on a stream"));
                }
                if p.len() != 8 {
                    return Err(err(ErrorCode::FrameSize, "PING not 8 bytes"));
                }
                if !h.has(flag::ACK) {
                    self.flood("PING")?;
                    let mut d = [0u8; 8];
                    d.copy_from_slice(p);
                    frame::put_ping(out, true, d);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if h.stream != 0 {
                    return Err(err(ErrorCode::Protocol, "GOAWAY on a stream"));
                }
                if p.len() < 8 {
                    return Err(err(ErrorCode::FrameSize, "GOAWAY shorter than 8 bytes"));
                }
                self.peer_goaway = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(h, p, out),
            _ => Ok(()), // unknown types are ignored (§4.1)
        }
    }

    /// Strip padding (§6.1, §6.2); Err for a pad length past the payload.
    fn unpad(h: &FrameHeader, p: &[u8]) -> Result<(usize, usize), ConnError> {
        if !h.has(flag::PADDED) {
            return Ok((0, p.len()));
        }
        let Some(&pad) = p.first() else {
            return Err(err(ErrorCode::FrameSize, "padded frame without pad length"));
        };
        let pad = pad as usize;
        if pad + 1 > p.len() {
            return Err(err(ErrorCode::Protocol, "padding longer than the payload"));
        }
        Ok((1, p.len() - pad))
    }

    fn data(&mut self, h: FrameHeader, p: &[u8], out: &mut Vec<u8>) -> Result<(), ConnError> {
        if h.stream == 0 {
            return Err(err(ErrorCode::Protocol, "DATA on stream 0"));
        }
        if h.stream > self.last_stream {
            return Err(err(ErrorCode::Protocol, "DATA on an idle stream"));
        }
        let (start, end) = Self::unpad(&h, p)?;
        // Flow control counts the whole payload, padding too (§6.9.1).
        let len = p.len() as i64;
        if len > self.recv_window {
            return Err(err(
                ErrorCode::FlowControl,
                "DATA beyond the connection window",
            ));
        }
        self.recv_window -= len;
        let padding = (p.len() - (end - start)) as u32;
        self.ack_conn(padding, out);
        if p.is_empty() && !h.has(flag::END_STREAM) {
            self.flood("empty DATA")?;
        }
        let Some(i) = self.index(h.stream) else {
            // A closed stream: its bytes will never be read.
            self.ack_conn((end - start) as u32, out);
            frame::put_rst(out, h.stream, ErrorCode::StreamClosed);
            return Ok(());
        };
        let s = &mut self.streams[i];
        if s.reset {
            self.ack_conn((end - start) as u32, out);
            return Ok(());
        }
        if s.recv_closed {
            self.ack_conn((end - start) as u32, out);
            self.stream_error(h.stream, ErrorCode::StreamClosed, out);
            return Ok(());
        }
        if len > s.recv_window {
            return Err(err(ErrorCode::FlowControl, "DATA beyond the stream window"));
        }
        s.recv_window -= len;
        s.recv_unacked += padding;
        s.body.extend_from_slice(&p[start..end]);
        s.body_total += (end - start) as u64;
        let over = s.head.content_length.is_some_and(|cl| s.body_total > cl);
        if h.has(flag::END_STREAM) {
            s.recv_closed = true;
        }
        let short = s.recv_closed && s.head.content_length.is_some_and(|cl| s.body_total != cl);
        if over || short {
            // §8.1.1: a body that disagrees with content-length is malformed.
            let n = s.body.len() as u32;
            s.body.clear();
            self.ack_conn(n, out);
            self.stream_error(h.stream, ErrorCode::Protocol, out);
            return Ok(());
        }
        self.events.push(Event::Data(h.stream));
        Ok(())
    }

    fn headers(&mut self, h: FrameHeader, p: &[u8], out: &mut Vec<u8>) -> Result<(), ConnError> {
        if h.stream == 0 {
            return Err(err(ErrorCode::Protocol, "HEADERS on stream 0"));
        }
        let (mut start, end) = Self::unpad(&h, p)?;
        if h.has(flag::PRIORITY) {
            if end < start + 5 {
                return Err(err(
                    ErrorCode::FrameSize,
                    "HEADERS too short for its priority",
                ));
            }
            let dep = u32::from_be_bytes([p[start], p[start + 1], p[start + 2], p[start + 3]]);
            if dep & frame::MAX_WINDOW == h.stream {
                // Depending on itself: a stream error, but the block is
                // still decoded below to keep the compression state.
                self.stream_error(h.stream, ErrorCode::Protocol, out);
            }
            start += 5;
        }
        if h.stream.is_multiple_of(2) {
            return Err(err(ErrorCode::Protocol, "even stream id from a client"));
        }
        let existing = self.index(h.stream);
        if existing.is_none() && h.stream <= self.last_stream {
            return Err(err(ErrorCode::StreamClosed, "HEADERS on a closed stream"));
        }
        let mut bytes = std::mem::take(&mut self.spare_block);
        bytes.clear();
        bytes.extend_from_slice(&p[start..end]);
        self.block = Some(Block {
            stream: h.stream,
            end_stream: h.has(flag::END_STREAM),
            frames: 1,
            bytes,
        });
        if h.has(flag::END_HEADERS) {
            self.end_block(out)?;
        }
        Ok(())
    }

    fn continuation(
        &mut self,
        h: FrameHeader,
        p: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        let max = self.limits.max_header_list_bytes.max(16384) * 2;
        let Some(b) = &mut self.block else {
            return Err(err(ErrorCode::Protocol, "CONTINUATION without HEADERS"));
        };
        b.frames += 1;
        if b.frames > MAX_CONTINUATIONS || b.bytes.len() + p.len() > max {
            log::info!(
                "http2 flood: CONTINUATION ({} frames, {} bytes)",
                b.frames,
                b.bytes.len()
            );
            return Err(err(ErrorCode::EnhanceYourCalm, "CONTINUATION flood"));
        }
        b.bytes.extend_from_slice(p);
        if h.has(flag::END_HEADERS) {
            self.end_block(out)?;
        }
        Ok(())
    }

    /// A complete header block: decode it, then open the stream (or take
    /// trailers).
    fn end_block(&mut self, out: &mut Vec<u8>) -> Result<(), ConnError> {
        let Some(b) = self.block.take() else {
            return Ok(());
        };
        let id = b.stream;
        let existing = self.index(id);
        let mut fields = match existing {
            Some(i) => std::mem::take(&mut self.streams[i].head),
            None => ReqFields::default(),
        };
        let trailer = existing.is_some();
        if !trailer {
            fields.reset(
                self.limits.max_field_bytes,
                self.limits.max_header_list_bytes,
            );
        }
        let decoded = self
            .decoder
            .decode(&b.bytes, |n, v| {
                fields.add(n, v, trailer);
            })
            .map_err(|_| err(ErrorCode::Compression, "HPACK decoding failed"));
        self.spare_block = b.bytes;
        if decoded? > MAX_DECODED {
            log::info!("http2: HPACK bomb");
            return Err(err(ErrorCode::EnhanceYourCalm, "HPACK bomb"));
        }
        if let Some(i) = existing {
            // Trailers: they must end the stream (§8.1).
            let s = &mut self.streams[i];
            s.head = fields;
            if s.reset {
                return Ok(());
            }
            if s.recv_closed || !b.end_stream || s.head.malformed.is_some() {
                self.stream_error(id, ErrorCode::Protocol, out);
                return Ok(());
            }
            s.recv_closed = true;
            if s.head.content_length.is_some_and(|cl| s.body_total != cl) {
                self.stream_error(id, ErrorCode::Protocol, out);
                return Ok(());
            }
            self.events.push(Event::Data(id));
            return Ok(());
        }
        fields.finish();
        self.last_stream = id;
        if self.goaway_last.is_some_and(|l| id > l) || self.peer_goaway {
            return Ok(()); // after our GOAWAY: ignored (§6.8)
        }
        if self.active() >= self.limits.max_concurrent_streams as usize {
            frame::put_rst(out, id, ErrorCode::RefusedStream);
            return Ok(());
        }
        self.streams_opened += 1;
        self.streams.push(Stream {
            id,
            recv_closed: b.end_stream,
            send_closed: false,
            reset: false,
            head: fields,
            body: Vec::new(),
            body_total: 0,
            app: S::default(),
            send_window: self.peer_initial_window as i64,
            recv_window: frame::DEFAULT_WINDOW as i64,
            recv_unacked: 0,
            answered: false,
        });
        self.events.push(Event::Request(id));
        if self.streams_opened >= self.limits.max_requests {
            // keepalive_requests: this one is the last.
            self.goaway(out);
        }
        Ok(())
    }

    fn rst(&mut self, h: FrameHeader, p: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 {
            return Err(err(ErrorCode::Protocol, "RST_STREAM on stream 0"));
        }
        if p.len() != 4 {
            return Err(err(ErrorCode::FrameSize, "RST_STREAM not 4 bytes"));
        }
        if h.stream > self.last_stream {
            return Err(err(ErrorCode::Protocol, "RST_STREAM on an idle stream"));
        }
        let Some(i) = self.index(h.stream) else {
            return Ok(());
        };
        let s = &mut self.streams[i];
        if s.reset {
            return Ok(());
        }
        s.reset = true;
        if !s.send_closed {
            self.peer_resets += 1;
            if self.peer_resets > RESET_ALLOWANCE + self.streams_done / 2 {
                log::info!(
                    "http2: rapid reset ({} streams cancelled)",
                    self.peer_resets
                );
                return Err(err(ErrorCode::EnhanceYourCalm, "rapid reset"));
            }
        }
        self.events.push(Event::Reset(h.stream));
        Ok(())
    }

    fn settings(
        &mut self,
        h: FrameHeader,
        p: &[u8],
        out: &mut Vec<u8>,
        now_ms: u64,
    ) -> Result<(), ConnError> {
        if h.stream != 0 {
            return Err(err(ErrorCode::Protocol, "SETTINGS on a stream"));
        }
        if h.has(flag::ACK) {
            if !p.is_empty() {
                return Err(err(ErrorCode::FrameSize, "SETTINGS ACK with a payload"));
            }
            self.settings_sent_ms = 0;
            return Ok(());
        }
        if !p.len().is_multiple_of(6) {
            return Err(err(
                ErrorCode::FrameSize,
                "SETTINGS not a multiple of 6 bytes",
            ));
        }
        self.flood("SETTINGS")?;
        let _ = now_ms;
        for c in p.chunks(6) {
            let id = u16::from_be_bytes([c[0], c[1]]);
            let v = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
            match id {
                setting::ENABLE_PUSH if v > 1 => {
                    return Err(err(ErrorCode::Protocol, "SETTINGS_ENABLE_PUSH not 0 or 1"));
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if v > frame::MAX_WINDOW {
                        return Err(err(
                            ErrorCode::FlowControl,
                            "SETTINGS_INITIAL_WINDOW_SIZE too large",
                        ));
                    }
                    let delta = v as i64 - self.peer_initial_window as i64;
                    for s in &mut self.streams {
                        s.send_window += delta;
                        if s.send_window > frame::MAX_WINDOW as i64 {
                            return Err(err(ErrorCode::FlowControl, "a stream window overflowed"));
                        }
                    }
                    self.peer_initial_window = v;
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::MIN_MAX_FRAME..=frame::MAX_MAX_FRAME).contains(&v) {
                        return Err(err(
                            ErrorCode::Protocol,
                            "SETTINGS_MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.peer_max_frame = v;
                }
                _ => {} // header table size: we never index; the rest is advice
            }
        }
        frame::put_settings_ack(out);
        Ok(())
    }

    fn window_update(
        &mut self,
        h: FrameHeader,
        p: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        if p.len() != 4 {
            return Err(err(ErrorCode::FrameSize, "WINDOW_UPDATE not 4 bytes"));
        }
        let inc = (u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & frame::MAX_WINDOW) as i64;
        if h.stream == 0 {
            if inc == 0 {
                return Err(err(ErrorCode::Protocol, "WINDOW_UPDATE of 0"));
            }
            self.send_window += inc;
            if self.send_window > frame::MAX_WINDOW as i64 {
                return Err(err(ErrorCode::FlowControl, "connection window overflowed"));
            }
            return Ok(());
        }
        if h.stream > self.last_stream {
            return Err(err(ErrorCode::Protocol, "WINDOW_UPDATE on an idle stream"));
        }
        let Some(i) = self.index(h.stream) else {
            return Ok(());
        };
        if self.streams[i].reset {
            return Ok(());
        }
        if inc == 0 {
            self.stream_error(h.stream, ErrorCode::Protocol, out);
            return Ok(());
        }
        let s = &mut self.streams[i];
        s.send_window += inc;
        if s.send_window > frame::MAX_WINDOW as i64 {
            self.stream_error(h.stream, ErrorCode::FlowControl, out);
        }
        Ok(())
    }

    fn ack_conn(&mut self, n: u32, out: &mut Vec<u8>) {
        self.recv_unacked += n;
        if self.recv_unacked >= self.limits.conn_window / 2 && self.recv_unacked > 0 {
            frame::put_window_update(out, 0, self.recv_unacked);
            self.recv_window += self.recv_unacked as i64;
            self.recv_unacked = 0;
        }
    }

    /// Reset stream `id` with `code` (our decision: its error, or the
    /// caller giving up on it). The caller hears of it as `Event::Reset`.
    pub fn stream_error(&mut self, id: u32, code: ErrorCode, out: &mut Vec<u8>) {
        frame::put_rst(out, id, code);
        if let Some(s) = self.stream(id) {
            if !s.reset {
                s.reset = true;
                self.events.push(Event::Reset(id));
            }
        }
    }

    /// The caller took `n` body bytes of stream `id`: give the window back
    /// (in batches, half a window at a time).
    pub fn consumed(&mut self, id: u32, n: usize, out: &mut Vec<u8>) {
        self.ack_conn(n as u32, out);
        let Some(s) = self.stream(id) else {
            return;
        };
        s.recv_unacked += n as u32;
        if !s.recv_closed && !s.reset && s.recv_unacked >= frame::DEFAULT_WINDOW / 2 {
            let inc = s.recv_unacked;
            s.recv_window += inc as i64;
            s.recv_unacked = 0;
            frame::put_window_update(out, id, inc);
        }
    }

    /// How many DATA bytes stream `id` may send now.
    pub fn send_window(&self, id: u32) -> usize {
        let Some(s) = self.streams.iter().find(|s| s.id == id) else {
            return 0;
        };
        s.send_window.min(self.send_window).max(0) as usize
    }

    /// Send the response head (an encoded header block) on stream `id`.
    pub fn send_headers(&mut self, id: u32, block: &[u8], end_stream: bool, out: &mut Vec<u8>) {
        let max = self.peer_max_frame as usize;
        let Some(s) = self.stream(id) else {
            return;
        };
        if s.reset || s.send_closed {
            return;
        }
        s.answered = true;
        s.send_closed = end_stream;
        frame::put_headers(out, id, block, end_stream, max);
    }

    /// Send what the windows allow of `data` on stream `id` (END_STREAM
    /// when it all went and `end`); returns the bytes taken.
    pub fn send_data(
        &mut self,
        id: u32,
        data: &[u8],
        end: bool,
        out: &mut Vec<u8>,
        now_ms: u64,
    ) -> usize {
        let window = self.send_window(id);
        let max = self.peer_max_frame as usize;
        let Some(i) = self.index(id) else {
            return 0;
        };
        let s = &mut self.streams[i];
        if s.reset || s.send_closed {
            return data.len();
        }
        let n = data.len().min(window);
        let all = n == data.len();
        if n == 0 && !(all && end) {
            if self.blocked_since_ms == 0 {
                self.blocked_since_ms = now_ms.max(1);
            }
            return 0;
        }
        frame::put_data(out, id, &data[..n], all && end, max);
        s.send_window -= n as i64;
        self.send_window -= n as i64;
        if all && end {
            s.send_closed = true;
        }
        if n > 0 {
            self.blocked_since_ms = if all { 0 } else { now_ms.max(1) };
        }
        n
    }

    /// The caller is done with stream `id`: forget it. A request whose body
    /// the client still sends is told to stop (RST_STREAM NO_ERROR, §8.1).
    pub fn remove(&mut self, id: u32, out: &mut Vec<u8>) {
        let Some(i) = self.index(id) else {
            return;
        };
        let s = self.streams.swap_remove(i);
        if s.send_closed && !s.reset {
            self.streams_done += 1;
            if !s.recv_closed {
                frame::put_rst(out, id, ErrorCode::NoError);
            }
        }
        // Buffered body bytes nobody will read.
        self.ack_conn(s.body.len() as u32, out);
        if self.streams.iter().all(|s| s.send_closed || s.reset) {
            self.blocked_since_ms = 0;
        }
    }

    /// Graceful shutdown: GOAWAY with the last stream we will answer.
    pub fn goaway(&mut self, out: &mut Vec<u8>) {
        if self.goaway_last.is_none() && self.state != State::Closed {
            self.goaway_last = Some(self.last_stream);
            frame::put_goaway(out, self.last_stream, ErrorCode::NoError);
        }
    }

    /// A connection error decided by the caller (a timeout).
    pub fn fail(&mut self, code: ErrorCode, out: &mut Vec<u8>) {
        if self.state != State::Closed {
            frame::put_goaway(out, self.last_stream, code);
            self.state = State::Closed;
        }
    }

    /// Our SETTINGS have waited longer than `SETTINGS_TIMEOUT_MS`.
    pub fn settings_overdue(&self, now_ms: u64) -> bool {
        self.settings_sent_ms > 0 && now_ms >= self.settings_sent_ms + SETTINGS_TIMEOUT_MS
    }

    /// When the SETTINGS acknowledgement is due (0: not awaited).
    pub fn settings_deadline_ms(&self) -> u64 {
        if self.settings_sent_ms == 0 {
            0
        } else {
            self.settings_sent_ms + SETTINGS_TIMEOUT_MS
        }
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
