//! The connection state machine against hand-made client frames, one test
//! per rule of RFC 9113 it enforces and per abuse it stops.

use super::*;
use crate::proto::h2::frame::{
    put_data, put_header, put_headers, put_ping, put_rst, put_settings, put_window_update, PREFACE,
};
use crate::proto::h2::hpack::encode_field;

type Conn = H2<u8>;

fn req_block(path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "a.test"),
        (":path", path),
    ] {
        encode_field(&mut b, n.as_bytes(), v.as_bytes());
    }
    b
}

fn frames(out: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut v = Vec::new();
    let mut b = out;
    while let Some(h) = FrameHeader::parse(b) {
        let end = HEADER_LEN + h.len as usize;
        v.push((h.kind, h.flags, h.stream, b[HEADER_LEN..end].to_vec()));
        b = &b[end..];
    }
    v
}

fn goaway_code(out: &[u8]) -> Option<u32> {
    frames(out)
        .iter()
        .find(|f| f.0 == kind::GOAWAY)
        .map(|f| u32::from_be_bytes([f.3[4], f.3[5], f.3[6], f.3[7]]))
}

fn rst_codes(out: &[u8]) -> Vec<(u32, u32)> {
    frames(out)
        .iter()
        .filter(|f| f.0 == kind::RST_STREAM)
        .map(|f| (f.2, u32::from_be_bytes([f.3[0], f.3[1], f.3[2], f.3[3]])))
        .collect()
}

/// A connection past the preface and SETTINGS exchange.
fn open(limits: Limits) -> (Conn, Vec<u8>) {
    let mut c = Conn::new(limits);
    let mut out = Vec::new();
    c.start(&mut out, 1);
    let mut input = PREFACE.to_vec();
    put_settings(&mut input, &[]);
    assert_eq!(c.recv(&input, &mut out, 1).unwrap(), input.len());
    out.clear();
    (c, out)
}

fn feed(c: &mut Conn, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ConnError> {
    c.recv(input, out, 1)
}

#[test]
fn a_request_arrives_as_an_event_with_its_head_and_settings_are_acked() {
    let mut c = Conn::new(Limits::default());
    let mut out = Vec::new();
    c.start(&mut out, 1);
    let f = frames(&out);
    assert_eq!(f[0].0, kind::SETTINGS);
    assert_eq!(f[1].0, kind::WINDOW_UPDATE);
    out.clear();
    let mut input = PREFACE.to_vec();
    put_settings(&mut input, &[(setting::INITIAL_WINDOW_SIZE, 100)]);
    put_headers(&mut input, 1, &req_block("/x"), true, 16384);
    // Byte by byte: partial frames wait.
    let mut buf = Vec::new();
    for b in input {
        buf.push(b);
        let n = c.recv(&buf, &mut out, 1).unwrap();
        buf.drain(..n);
    }
    assert!(buf.is_empty());
    assert_eq!(frames(&out)[0].0, kind::SETTINGS);
    assert_eq!(frames(&out)[0].1, flag::ACK);
    assert_eq!(c.events, [Event::Request(1)]);
    let s = c.stream(1).unwrap();
    assert_eq!(s.head.path(), b"/x");
    assert!(s.recv_closed);
    assert_eq!(c.send_window(1), 100);
}

#[test]
fn a_bad_preface_or_a_first_frame_other_than_settings_ends_the_connection() {
    let mut c = Conn::new(Limits::default());
    let mut out = Vec::new();
    assert_eq!(
        c.recv(b"GET / HTTP/1.1\r\n", &mut out, 1).unwrap_err().code,
        ErrorCode::Protocol
    );
    let mut c = Conn::new(Limits::default());
    let mut input = PREFACE.to_vec();
    put_ping(&mut input, false, [0; 8]);
    assert_eq!(
        c.recv(&input, &mut out, 1).unwrap_err().code,
        ErrorCode::Protocol
    );
    assert!(c.is_closed());
}

#[test]
fn stream_ids_must_be_odd_and_rise() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_headers(&mut i, 2, &req_block("/"), true, 16384);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::Protocol
    );
    assert_eq!(goaway_code(&out), Some(ErrorCode::Protocol as u32));

    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_headers(&mut i, 5, &req_block("/"), true, 16384);
    put_headers(&mut i, 3, &req_block("/"), true, 16384);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::StreamClosed
    );
}

#[test]
fn frames_larger_than_our_max_frame_size_are_a_frame_size_error() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 16385, kind::DATA, 0, 1);
    i.resize(i.len() + 16385, 0);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::FrameSize
    );
}

#[test]
fn data_beyond_the_stream_window_is_a_flow_control_error_and_consumption_reopens_it() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_headers(&mut i, 1, &req_block("/up"), false, 16384);
    for _ in 0..3 {
        put_data(&mut i, 1, &[1u8; 16384], false, 16384);
    }
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(c.stream(1).unwrap().body.len(), 3 * 16384);
    c.consumed(1, 3 * 16384, &mut out);
    let wu: Vec<_> = frames(&out)
        .into_iter()
        .filter(|f| f.0 == kind::WINDOW_UPDATE)
        .collect();
    assert_eq!(
        wu.len(),
        1,
        "stream window update only (the connection's is 1 MiB)"
    );
    assert_eq!(wu[0].2, 1);
    // Window now 65535 - 49152 + 49152: 65535 more is one byte too many.
    let mut i = Vec::new();
    for _ in 0..4 {
        put_data(&mut i, 1, &[1u8; 16384], false, 16384);
    }
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::FlowControl
    );
}

#[test]
fn sending_respects_both_windows_and_window_updates_open_them() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_settings(&mut i, &[(setting::INITIAL_WINDOW_SIZE, 10)]);
    put_headers(&mut i, 1, &req_block("/"), true, 16384);
    feed(&mut c, &i, &mut out).unwrap();
    out.clear();
    c.send_headers(1, &[0x88], false, &mut out);
    assert_eq!(c.send_data(1, &[7u8; 25], true, &mut out, 5), 10);
    assert_eq!(c.blocked_since_ms, 5);
    assert_eq!(c.send_data(1, &[7u8; 15], true, &mut out, 6), 0);
    let mut i = Vec::new();
    put_window_update(&mut i, 1, 100);
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(c.send_data(1, &[7u8; 15], true, &mut out, 7), 15);
    assert_eq!(c.blocked_since_ms, 0);
    let f = frames(&out);
    assert_eq!(f.last().unwrap().1, flag::END_STREAM);
    assert!(c.stream(1).unwrap().send_closed);
    // A SETTINGS change moves open streams' windows (§6.9.2).
    let mut i = Vec::new();
    put_headers(&mut i, 3, &req_block("/"), true, 16384);
    put_settings(&mut i, &[(setting::INITIAL_WINDOW_SIZE, 50)]);
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(c.send_window(3), 50);
}

#[test]
fn window_update_rules_zero_and_overflow() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_window_update(&mut i, 0, 0);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::Protocol
    );
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_window_update(&mut i, 0, frame::MAX_WINDOW);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::FlowControl
    );
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_headers(&mut i, 1, &req_block("/"), true, 16384);
    put_window_update(&mut i, 1, frame::MAX_WINDOW);
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(rst_codes(&out), [(1, ErrorCode::FlowControl as u32)]);
}

#[test]
fn streams_past_max_concurrent_streams_are_refused() {
    let (mut c, mut out) = open(Limits {
        max_concurrent_streams: 2,
        ..Limits::default()
    });
    let mut i = Vec::new();
    for id in [1, 3, 5] {
        put_headers(&mut i, id, &req_block("/"), true, 16384);
    }
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(c.events, [Event::Request(1), Event::Request(3)]);
    assert_eq!(rst_codes(&out), [(5, ErrorCode::RefusedStream as u32)]);
}

#[test]
fn rapid_reset_cve_2023_44487_ends_the_connection() {
    let (mut c, mut out) = open(Limits::default());
    let mut id = 1;
    let r = loop {
        let mut i = Vec::new();
        put_headers(&mut i, id, &req_block("/"), true, 16384);
        put_rst(&mut i, id, ErrorCode::Cancel);
        if let Err(e) = feed(&mut c, &i, &mut out) {
            break e;
        }
        // The caller forgets reset streams.
        for e in std::mem::take(&mut c.events) {
            if let Event::Reset(s) = e {
                c.remove(s, &mut out);
            }
        }
        id += 2;
        assert!(id < 1000, "never stopped");
    };
    assert_eq!(r.code, ErrorCode::EnhanceYourCalm);
    assert_eq!(goaway_code(&out), Some(ErrorCode::EnhanceYourCalm as u32));
}

#[test]
fn answered_streams_earn_room_for_cancellations() {
    let (mut c, mut out) = open(Limits::default());
    let mut id = 1;
    for _ in 0..300 {
        let mut i = Vec::new();
        put_headers(&mut i, id, &req_block("/"), true, 16384);
        feed(&mut c, &i, &mut out).unwrap();
        c.send_headers(id, &[0x88], true, &mut out);
        c.remove(id, &mut out);
        id += 2;
    }
    for _ in 0..200 {
        let mut i = Vec::new();
        put_headers(&mut i, id, &req_block("/"), true, 16384);
        put_rst(&mut i, id, ErrorCode::Cancel);
        feed(&mut c, &i, &mut out).unwrap();
        c.remove(id, &mut out);
        id += 2;
    }
}

#[test]
fn continuation_flood_ends_the_connection() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 0, kind::HEADERS, 0, 1);
    for _ in 0..100 {
        put_header(&mut i, 0, kind::CONTINUATION, 0, 1);
    }
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::EnhanceYourCalm
    );
    // And by bytes: a block that never ends, in full frames.
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 16384, kind::HEADERS, 0, 1);
    i.resize(i.len() + 16384, 0x41);
    for _ in 0..10 {
        put_header(&mut i, 16384, kind::CONTINUATION, 0, 1);
        i.resize(i.len() + 16384, 0x41);
    }
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::EnhanceYourCalm
    );
}

#[test]
fn a_frame_inside_a_header_block_or_a_stray_continuation_is_a_protocol_error() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 0, kind::HEADERS, 0, 1);
    put_ping(&mut i, false, [0; 8]);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::Protocol
    );
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 0, kind::CONTINUATION, flag::END_HEADERS, 1);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::Protocol
    );
}

#[test]
fn an_hpack_bomb_ends_the_connection() {
    let (mut c, mut out) = open(Limits::default());
    let mut block = req_block("/");
    block.push(0x40);
    block.push(0x05);
    block.extend_from_slice(b"x-big");
    // A 4000-byte value: 127 + 33 + (30 << 7) in a 7-bit prefix.
    block.extend_from_slice(&[0x7f, 0x80 | 33, 30]);
    block.extend_from_slice(&[b'v'; 4000]);
    block.extend(std::iter::repeat_n(0x80 | 62, 8000));
    let mut i = Vec::new();
    put_headers(&mut i, 1, &block, true, 16384);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::EnhanceYourCalm
    );
}

#[test]
fn a_header_list_over_the_limit_is_marked_too_large_not_fatal() {
    let (mut c, mut out) = open(Limits::default());
    let mut block = req_block("/");
    encode_field(&mut block, b"x-big", &[b'a'; 10000]);
    let mut i = Vec::new();
    put_headers(&mut i, 1, &block, true, 16384);
    feed(&mut c, &i, &mut out).unwrap();
    assert!(c.stream(1).unwrap().head.too_large);
}

#[test]
fn ping_and_settings_floods_end_the_connection_and_a_ping_is_answered() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_ping(&mut i, false, *b"12345678");
    feed(&mut c, &i, &mut out).unwrap();
    let f = frames(&out);
    assert_eq!(
        (f[0].0, f[0].1, &f[0].3[..]),
        (kind::PING, flag::ACK, &b"12345678"[..])
    );
    let mut i = Vec::new();
    for _ in 0..2000 {
        put_ping(&mut i, false, [0; 8]);
    }
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::EnhanceYourCalm
    );
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    for _ in 0..2000 {
        put_settings(&mut i, &[]);
    }
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::EnhanceYourCalm
    );
    // A steady trickle is fine: the bucket refills.
    let (mut c, mut out) = open(Limits::default());
    for t in 0..3000u64 {
        let mut i = Vec::new();
        put_ping(&mut i, false, [0; 8]);
        c.recv(&i, &mut out, 1 + t * 20).unwrap();
        out.clear();
    }
}

#[test]
fn settings_values_out_of_range_are_errors() {
    for (id, v, code) in [
        (setting::ENABLE_PUSH, 2, ErrorCode::Protocol),
        (
            setting::INITIAL_WINDOW_SIZE,
            1 << 31,
            ErrorCode::FlowControl,
        ),
        (setting::MAX_FRAME_SIZE, 100, ErrorCode::Protocol),
        (setting::MAX_FRAME_SIZE, 1 << 24, ErrorCode::Protocol),
    ] {
        let (mut c, mut out) = open(Limits::default());
        let mut i = Vec::new();
        put_settings(&mut i, &[(id, v)]);
        assert_eq!(
            feed(&mut c, &i, &mut out).unwrap_err().code,
            code,
            "{id} {v}"
        );
    }
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 5, kind::SETTINGS, 0, 0);
    i.extend_from_slice(&[0; 5]);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::FrameSize
    );
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 6, kind::SETTINGS, flag::ACK, 0);
    i.extend_from_slice(&[0; 6]);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::FrameSize
    );
}

#[test]
fn settings_must_be_acknowledged_in_time() {
    let mut c = Conn::new(Limits::default());
    let mut out = Vec::new();
    c.start(&mut out, 1000);
    assert!(!c.settings_overdue(1000 + SETTINGS_TIMEOUT_MS - 1));
    assert!(c.settings_overdue(1000 + SETTINGS_TIMEOUT_MS));
    let mut i = PREFACE.to_vec();
    put_settings(&mut i, &[]);
    put_header(&mut i, 0, kind::SETTINGS, flag::ACK, 0);
    c.recv(&i, &mut out, 2000).unwrap();
    assert!(!c.settings_overdue(1_000_000));
}

#[test]
fn trailers_end_the_stream_and_a_body_must_match_content_length() {
    let (mut c, mut out) = open(Limits::default());
    let mut block = req_block("/");
    encode_field(&mut block, b"content-length", b"3");
    let mut i = Vec::new();
    put_headers(&mut i, 1, &block, false, 16384);
    put_data(&mut i, 1, b"abc", false, 16384);
    let mut t = Vec::new();
    encode_field(&mut t, b"x-checksum", b"1");
    put_headers(&mut i, 1, &t, true, 16384);
    feed(&mut c, &i, &mut out).unwrap();
    assert!(c.stream(1).unwrap().recv_closed);
    assert!(rst_codes(&out).is_empty());

    let mut i = Vec::new();
    put_headers(&mut i, 3, &block, false, 16384);
    put_data(&mut i, 3, b"abcd", true, 16384);
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(rst_codes(&out), [(3, ErrorCode::Protocol as u32)]);
    assert!(c.events.contains(&Event::Reset(3)));
}

#[test]
fn frames_on_idle_streams_and_stream_zero_are_protocol_errors() {
    for (kind_, stream, len) in [
        (kind::DATA, 0u32, 0usize),
        (kind::DATA, 7, 0),
        (kind::HEADERS, 0, 0),
        (kind::RST_STREAM, 0, 4),
        (kind::RST_STREAM, 9, 4),
        (kind::WINDOW_UPDATE, 9, 4),
        (kind::PRIORITY, 0, 5),
        (kind::PUSH_PROMISE, 1, 4),
    ] {
        let (mut c, mut out) = open(Limits::default());
        let mut i = Vec::new();
        put_header(&mut i, len, kind_, 0, stream);
        i.extend(std::iter::repeat_n(1u8, len));
        assert_eq!(
            feed(&mut c, &i, &mut out).unwrap_err().code,
            ErrorCode::Protocol,
            "type {kind_} stream {stream}"
        );
    }
}

#[test]
fn max_requests_streams_then_a_graceful_goaway_and_later_streams_are_ignored() {
    let (mut c, mut out) = open(Limits {
        max_requests: 2,
        ..Limits::default()
    });
    let mut i = Vec::new();
    for id in [1, 3, 5] {
        put_headers(&mut i, id, &req_block("/"), true, 16384);
    }
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(c.events, [Event::Request(1), Event::Request(3)]);
    assert_eq!(goaway_code(&out), Some(0));
    assert!(c.goaway_sent());
}

#[test]
fn unknown_frame_types_are_ignored_and_padding_is_stripped() {
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_header(&mut i, 3, 0x42, 0, 0);
    i.extend_from_slice(b"xyz");
    put_headers(&mut i, 1, &req_block("/"), false, 16384);
    put_header(
        &mut i,
        1 + 2 + 3,
        kind::DATA,
        flag::PADDED | flag::END_STREAM,
        1,
    );
    i.extend_from_slice(&[3, b'h', b'i', 0, 0, 0]);
    feed(&mut c, &i, &mut out).unwrap();
    assert_eq!(c.stream(1).unwrap().body, b"hi");
    let (mut c, mut out) = open(Limits::default());
    let mut i = Vec::new();
    put_headers(&mut i, 1, &req_block("/"), false, 16384);
    put_header(&mut i, 2, kind::DATA, flag::PADDED, 1);
    i.extend_from_slice(&[5, 0]);
    assert_eq!(
        feed(&mut c, &i, &mut out).unwrap_err().code,
        ErrorCode::Protocol
    );
}
