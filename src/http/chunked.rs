//! Incremental decoder for the chunked transfer coding of request bodies
//! (RFC 9112 §7.1).
//!
//! Input may arrive split at any byte; body bytes are handed out as slices of the
//! input (no copy). The decoder is strict where leniency enables request smuggling:
//! bare LF line endings, a missing CRLF after chunk data and oversized size lines,
//! sizes or trailers are errors. A decoder made [`ChunkedDecoder::with_limit`]
//! refuses a chunk as soon as its *declared* size would take the body past the
//! limit (`client_max_body_size`), before any of its data is read.

#![deny(missing_docs)]

/// Why a chunked body was refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ChunkedError {
    /// Not valid chunked framing, including a chunk size that does not fit
    /// in a signed 64-bit length (answer 400, as nginx does).
    Malformed,
    /// The body (counting a chunk's declared size) is over the decoder's
    /// limit (answer 413).
    TooLarge,
}

impl ChunkedError {
    /// The status a request with this body gets.
    pub fn status(self) -> u16 {
        match self {
            ChunkedError::Malformed => 400,
            ChunkedError::TooLarge => 413,
        }
    }
}

/// Longest accepted chunk-size line (size + extensions, without CRLF).
const MAX_SIZE_LINE_BYTES: usize = 4096;
/// Most hex digits in a chunk size (leading zeros included).
const MAX_SIZE_HEX_DIGITS: u32 = 16;
/// Largest chunk size (nginx: `NGX_MAX_OFF_T_VALUE`).
const MAX_CHUNK_BYTES: u64 = i64::MAX as u64;
/// Most bytes in the whole trailer section (including CRLFs).
const MAX_TRAILER_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// Whitespace after the size digits; expect more of it, `;` or CR.
    SizeWs,
    /// Skipping a chunk extension (after `;`) up to CR.
    Extension,
    /// Saw CR ending the size line; expect LF.
    SizeLf,
    /// Inside chunk data; `remaining_bytes` left in this chunk.
    Data { remaining_bytes: u64 },
    /// After chunk data; expect CR.
    DataCr,
    /// After chunk data and CR; expect LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerLineStart,
    /// Inside a trailer field name (before `:`).
    TrailerName,
    /// Inside a trailer field value, up to CR.
    TrailerValue,
    /// Saw CR ending a trailer line; expect LF.
    TrailerLf,
    /// Saw CR of the final empty line; expect LF.
    FinalLf,
    /// The body is complete.
    Done,
    /// An error was returned; every later call returns it again.
    Failed(ChunkedError),
}

/// Incremental chunked-body decoder; one per request body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Value of the chunk size read so far.
    size_value: u64,
    /// Hex digits read for the current size.
    size_digits: u32,
    /// Bytes of the current size line so far (size + extensions).
    size_line_bytes: usize,
    /// Bytes of the trailer section so far.
    trailer_bytes: usize,
    /// Decoded body bytes so far.
    body_bytes: u64,
    /// Most body bytes accepted (0 = no limit).
    limit_bytes: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// RFC 9110 `tchar`: the bytes allowed in a field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Bytes allowed inside an extension or trailer value: visible, SP, HTAB, obs-text.
fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size_value: 0,
            size_digits: 0,
            size_line_bytes: 0,
            trailer_bytes: 0,
            body_bytes: 0,
            limit_bytes: 0,
        }
    }

    /// A decoder that refuses a body over `limit_bytes` (0 = no limit) with
    /// [`ChunkedError::TooLarge`], judged by each chunk's declared size.
    pub fn with_limit(limit_bytes: u64) -> Self {
        ChunkedDecoder {
            limit_bytes,
            ..Self::new()
        }
    }

    /// Total body bytes decoded so far (for `client_max_body_size`).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether the terminating chunk and trailer section have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn fail(&mut self, err: ChunkedError) -> Result<(usize, bool), ChunkedError> {
        self.state = State::Failed(err);
        Err(err)
    }

    /// Consumes as much of `input` as possible, calling `on_data` with each run of
    /// body bytes (slices of `input`). Returns `(consumed, done)`; once `done`, bytes
    /// after the body (a pipelined request) are left unconsumed, and later calls
    /// consume nothing. After an error every call returns the same error.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_data: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), ChunkedError> {
        let mut pos = 0;
        while pos < input.len() {
            let b = input[pos];
            match self.state {
                State::Done => return Ok((pos, true)),
                State::Failed(err) => return Err(err),
                State::Data { remaining_bytes } => {
                    let avail = (input.len() - pos) as u64;
                    let take = remaining_bytes.min(avail) as usize;
                    on_data(&input[pos..pos + take]);
                    pos += take;
                    self.body_bytes = self.body_bytes.saturating_add(take as u64);
                    let left = remaining_bytes - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data {
                            remaining_bytes: left,
                        }
                    };
                    continue;
                }
                State::Size => {
                    if let Some(d) = (b as char).to_digit(16) {
                        self.size_digits += 1;
                        if self.size_digits > MAX_SIZE_HEX_DIGITS
                            || self.size_value > MAX_CHUNK_BYTES >> 4
                        {
                            return self.fail(ChunkedError::Malformed);
                        }
                        self.size_value = self.size_value << 4 | u64::from(d);
                    } else if self.size_digits == 0 {
                        return self.fail(ChunkedError::Malformed);
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b';' {
                        self.state = State::Extension;
                    } else if b == b' ' || b == b'\t' {
                        self.state = State::SizeWs;
                    } else {
                        return self.fail(ChunkedError::Malformed);
                    }
                    if b != b'\r' {
                        self.size_line_bytes += 1;
                    }
                }
                State::SizeWs => {
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b';' => self.state = State::Extension,
                        b' ' | b'\t' => {}
                        _ => return self.fail(ChunkedError::Malformed),
                    }
                    if b != b'\r' {
                        self.size_line_bytes += 1;
                    }
                }
                State::Extension => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if is_field_byte(b) {
                        self.size_line_bytes += 1;
                    } else {
                        return self.fail(ChunkedError::Malformed);
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return self.fail(ChunkedError::Malformed);
                    }
                    let declared = self.body_bytes.saturating_add(self.size_value);
                    if self.limit_bytes > 0 && declared > self.limit_bytes {
                        return self.fail(ChunkedError::TooLarge);
                    }
                    self.state = if self.size_value == 0 {
                        State::TrailerLineStart
                    } else {
                        State::Data {
                            remaining_bytes: self.size_value,
                        }
                    };
                    self.size_value = 0;
                    self.size_digits = 0;
                    self.size_line_bytes = 0;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return self.fail(ChunkedError::Malformed);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return self.fail(ChunkedError::Malformed);
                    }
                    self.state = State::Size;
                }
                State::TrailerLineStart => {
                    self.trailer_bytes += 1;
                    if b == b'\r' {
                        self.state = State::FinalLf;
                    } else if is_tchar(b) {
                        self.state = State::TrailerName;
                    } else {
                        // Includes SP/HTAB (obsolete line folding) and bare LF.
                        return self.fail(ChunkedError::Malformed);
                    }
                }
                State::TrailerName => {
                    self.trailer_bytes += 1;
                    if b == b':' {
                        self.state = State::TrailerValue;
                    } else if !is_tchar(b) {
                        return self.fail(ChunkedError::Malformed);
                    }
                }
                State::TrailerValue => {
                    self.trailer_bytes += 1;
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if !is_field_byte(b) {
                        return self.fail(ChunkedError::Malformed);
                    }
                }
                State::TrailerLf => {
                    self.trailer_bytes += 1;
                    if b != b'\n' {
                        return self.fail(ChunkedError::Malformed);
                    }
                    self.state = State::TrailerLineStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return self.fail(ChunkedError::Malformed);
                    }
                    self.state = State::Done;
                    return Ok((pos + 1, true));
                }
            }
            if self.size_line_bytes > MAX_SIZE_LINE_BYTES || self.trailer_bytes > MAX_TRAILER_BYTES
            {
                return self.fail(ChunkedError::Malformed);
            }
            pos += 1;
        }
        match self.state {
            State::Failed(err) => Err(err),
            state => Ok((pos, state == State::Done)),
        }
    }
}

/// Appends `data` to `out` as one chunk (`hex-size CRLF data CRLF`); empty
/// data appends nothing (an empty chunk would end the body).
pub fn encode_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = data.len() as u64;
    let digits = (64 - n.leading_zeros()).div_ceil(4);
    for i in (0..digits).rev() {
        out.push(HEX[((n >> (i * 4)) & 0xf) as usize]);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and the empty trailer section that end a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of the given sizes (cycling); returns body, consumed, done.
    fn feed_in_pieces(
        input: &[u8],
        piece_len: usize,
    ) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut dec = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut offset = 0;
        while offset < input.len() {
            let end = (offset + piece_len).min(input.len());
            let (n, done) = dec.feed(&input[offset..end], &mut |d| body.extend_from_slice(d))?;
            consumed += n;
            if done {
                assert_eq!(dec.body_bytes(), body.len() as u64);
                return Ok((body, consumed, true));
            }
            assert_eq!(n, end - offset, "not done, so everything is consumed");
            offset = end;
        }
        Ok((body, consumed, false))
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut dec = ChunkedDecoder::new();
        let mut body = Vec::new();
        let (n, done) = dec.feed(input, &mut |d| body.extend_from_slice(d))?;
        Ok((body, n, done))
    }

    const WIKI: &[u8] = b"4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
    const WIKI_BODY: &[u8] = b"Wikipedia in \r\n\r\nchunks.";

    #[test]
    fn decodes_simple_body() {
        assert_eq!(decode_all(WIKI), Ok((WIKI_BODY.to_vec(), WIKI.len(), true)));
    }

    #[test]
    fn every_piece_size_gives_same_result() {
        for piece in 1..=WIKI.len() {
            assert_eq!(
                feed_in_pieces(WIKI, piece),
                Ok((WIKI_BODY.to_vec(), WIKI.len(), true))
            );
        }
    }

    #[test]
    fn every_split_point_with_trailers_and_pipelined_request() {
        let msg = b"1a;name=value;x=\"q\"\r\nabcdefghijklmnopqrstuvwxyz\r\n3\r\n123\r\n0;end\r\nX-Sum: 1\r\nX-B: two words\r\n\r\n";
        let mut input = msg.to_vec();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
        for split in 0..=input.len() {
            let mut dec = ChunkedDecoder::new();
            let mut body = Vec::new();
            let (n1, done1) = dec
                .feed(&input[..split], &mut |d| body.extend_from_slice(d))
                .unwrap();
            let total = if done1 {
                n1
            } else {
                assert_eq!(n1, split);
                let (n2, done2) = dec
                    .feed(&input[split..], &mut |d| body.extend_from_slice(d))
                    .unwrap();
                assert!(done2);
                n1 + n2
            };
            assert_eq!(total, msg.len(), "split {split}");
            assert_eq!(body, b"abcdefghijklmnopqrstuvwxyz123");
            assert_eq!(dec.body_bytes(), 29);
        }
    }

    #[test]
    fn done_decoder_consumes_nothing_more() {
        let mut dec = ChunkedDecoder::new();
        let mut input = b"0\r\n\r\n".to_vec();
        input.extend_from_slice(b"next");
        assert_eq!(dec.feed(&input, &mut |_| {}), Ok((5, true)));
        assert!(dec.is_done());
        assert_eq!(
            dec.feed(b"more", &mut |_| panic!("no data after done")),
            Ok((0, true))
        );
        assert_eq!(dec.feed(b"", &mut |_| {}), Ok((0, true)));
    }

    #[test]
    fn empty_input_is_not_done() {
        let mut dec = ChunkedDecoder::default();
        assert_eq!(dec.feed(b"", &mut |_| {}), Ok((0, false)));
        assert_eq!(dec.feed(b"0\r\n", &mut |_| {}), Ok((3, false)));
        assert_eq!(dec.feed(b"\r", &mut |_| {}), Ok((1, false)));
        assert_eq!(dec.feed(b"\n", &mut |_| {}), Ok((1, true)));
    }

    #[test]
    fn hex_sizes_case_insensitive_and_leading_zeros() {
        let input =
            b"a\r\n0123456789\r\nA\r\n0123456789\r\n00000010\r\n0123456789abcdef\r\n0\r\n\r\n";
        let (body, _, done) = decode_all(input).unwrap();
        assert!(done);
        assert_eq!(body.len(), 36);
    }

    #[test]
    fn data_is_zero_copy_slices_of_input() {
        let input = b"5\r\nhello\r\n0\r\n\r\n";
        let mut dec = ChunkedDecoder::new();
        let range = input.as_ptr_range();
        let mut calls = 0;
        dec.feed(input, &mut |d| {
            calls += 1;
            assert!(range.contains(&d.as_ptr()));
            assert_eq!(d, b"hello");
        })
        .unwrap();
        assert_eq!(calls, 1);
    }

    #[test]
    fn encoded_chunks_decode_back() {
        let mut out = Vec::new();
        let big = vec![b'x'; 0x1a2b];
        for d in [&b"hello"[..], b"", &big, b"0123456789abcdef"] {
            encode_chunk(&mut out, d);
        }
        assert!(out.starts_with(b"5\r\nhello\r\n1a2b\r\n"));
        out.extend_from_slice(LAST_CHUNK);
        let (body, n, done) = decode_all(&out).unwrap();
        assert!(done);
        assert_eq!((body.len(), n), (5 + 0x1a2b + 16, out.len()));
    }

    #[test]
    fn chunk_size_overflow_is_malformed() {
        for input in [
            &b"10000000000000000\r\n"[..],
            b"fffffffffffffffff",
            b"00000000000000001\r\n",
            // 16 digits, but past i64::MAX (nginx's NGX_MAX_OFF_T_VALUE).
            b"FFFFFFFFFFFFFFFF\r\nabc\r\n",
            b"8000000000000000\r\n",
        ] {
            assert_eq!(
                decode_all(input),
                Err(ChunkedError::Malformed),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // i64::MAX itself is a size (we only see the start of such a chunk).
        let (body, n, done) = decode_all(b"7fffffffffffffff\r\nabc").unwrap();
        assert_eq!((body.as_slice(), n, done), (&b"abc"[..], 21, false));
    }

    #[test]
    fn declared_chunk_size_over_the_limit_is_too_large_before_its_data() {
        let mut dec = ChunkedDecoder::with_limit(10);
        let mut body = Vec::new();
        // 6 + 4 = 10 bytes: at the limit is fine.
        let r = dec.feed(b"6\r\nabcdef\r\n4\r\nghij\r\n", &mut |d| {
            body.extend_from_slice(d)
        });
        assert_eq!(r, Ok((20, false)));
        // One more declared byte fails at once, with none of its data read.
        let mut more = 0;
        assert_eq!(
            dec.feed(b"1\r\n", &mut |d| more += d.len()),
            Err(ChunkedError::TooLarge)
        );
        assert_eq!((body.len(), more), (10, 0));
        assert_eq!(ChunkedError::TooLarge.status(), 413);
        // A huge declared size against a limit: too large, not a wrap.
        let mut dec = ChunkedDecoder::with_limit(1 << 20);
        assert_eq!(
            dec.feed(b"7fffffffffffffff\r\n", &mut |_| {}),
            Err(ChunkedError::TooLarge)
        );
        // No limit: the same size is accepted.
        let mut dec = ChunkedDecoder::with_limit(0);
        assert_eq!(
            dec.feed(b"7fffffffffffffff\r\n", &mut |_| {}),
            Ok((18, false))
        );
    }

    #[test]
    fn malformed_framing() {
        for input in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b"0x5\r\n",
            b"5\n",
            b"5\r\r",
            b"5\r\nhelloX",
            b"5\r\nhello\rX",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\n",
            b"0\r\n\n",
            b"0\r\nX-A: b\n\r\n",
            b"0\r\nX-A: b\r\r",
            b"0\r\n folded\r\n\r\n",
            b"0\r\n: no-name\r\n\r\n",
            b"0\r\nBad Name: x\r\n\r\n",
            b"0\r\nX-A: nul\0\r\n\r\n",
            b"5;ext\x01\r\n",
            b"5;ext\nhello",
            b";ext\r\n",
            b"5 x\r\nhello\r\n",
            b"5 5\r\nhello\r\n",
        ] {
            let shown = String::from_utf8_lossy(input);
            assert_eq!(decode_all(input), Err(ChunkedError::Malformed), "{shown:?}");
            assert_eq!(
                feed_in_pieces(input, 1),
                Err(ChunkedError::Malformed),
                "{shown:?}"
            );
        }
    }

    #[test]
    fn whitespace_before_extension_is_ignored() {
        let (body, _, done) = decode_all(b"3 ;a=b\r\nabc\r\n0\t\r\n\r\n").unwrap();
        assert_eq!((body.as_slice(), done), (&b"abc"[..], true));
    }

    #[test]
    fn size_line_limit() {
        let mut ok_line = b"1;".to_vec();
        ok_line.resize(MAX_SIZE_LINE_BYTES, b'a');
        ok_line.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(decode_all(&ok_line).map(|r| r.2), Ok(true));
        let mut long = b"1;".to_vec();
        long.resize(MAX_SIZE_LINE_BYTES + 1, b'a');
        long.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&long), Err(ChunkedError::Malformed));
        // The limit also holds when the line arrives one byte at a time.
        assert_eq!(feed_in_pieces(&long, 1), Err(ChunkedError::Malformed));
    }

    #[test]
    fn trailer_limit() {
        let mut input = b"0\r\n".to_vec();
        for i in 0..1000 {
            input.extend_from_slice(format!("X-T{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&input), Err(ChunkedError::Malformed));
        let mut small = b"0\r\n".to_vec();
        for i in 0..100 {
            small.extend_from_slice(format!("X-T{i}: v\r\n").as_bytes());
        }
        small.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&small).map(|r| r.2), Ok(true));
    }

    #[test]
    fn error_is_sticky() {
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.feed(b"z", &mut |_| {}), Err(ChunkedError::Malformed));
        assert_eq!(
            dec.feed(b"0\r\n\r\n", &mut |_| {}),
            Err(ChunkedError::Malformed)
        );
    }

    #[test]
    fn body_bytes_counts_partial_chunks() {
        let mut dec = ChunkedDecoder::new();
        dec.feed(b"100\r\n", &mut |_| {}).unwrap();
        dec.feed(&[b'x'; 100], &mut |_| {}).unwrap();
        assert_eq!(dec.body_bytes(), 100);
        assert_eq!(dec.feed(&[b'x'; 156], &mut |_| {}), Ok((156, false)));
        assert_eq!(dec.body_bytes(), 256);
        // One byte too many: the chunk must be followed by CRLF.
        assert_eq!(dec.feed(b"x", &mut |_| {}), Err(ChunkedError::Malformed));
        assert_eq!(dec.body_bytes(), 256);
    }

    #[test]
    fn property_random_bodies_any_split() {
        let mut state = 99u64;
        let mut rnd = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..300 {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for _ in 0..rnd() % 5 {
                let len = rnd() % 40 + 1;
                let data: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                if rnd() % 2 == 0 {
                    input.extend_from_slice(format!("{len:x}").as_bytes());
                } else {
                    input.extend_from_slice(format!("{len:X};k=v").as_bytes());
                }
                input.extend_from_slice(b"\r\n");
                input.extend_from_slice(&data);
                input.extend_from_slice(b"\r\n");
                want.extend_from_slice(&data);
            }
            input.extend_from_slice(b"0\r\n\r\n");
            let piece = rnd() % 7 + 1;
            assert_eq!(
                feed_in_pieces(&input, piece),
                Ok((want.clone(), input.len(), true))
            );
            // Corrupting any single framing byte never panics.
            let i = rnd() % input.len();
            let mut bad = input.clone();
            bad[i] = b'\n';
            let _ = feed_in_pieces(&bad, piece);
        }
    }
}
