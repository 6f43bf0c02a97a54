//! Worker-wide HTTP state shared by all connections of one worker: routing
//! tables, the cached clock and Date header, the open-file cache, access-log
//! buffers, the limits phase's state and local counters (published to shared
//! memory once per loop iteration).

use crate::config::{Config, LogFormat};
use crate::http::limits_phase::LimitsCtx;
use crate::http::site::Site;
use crate::http::static_file::FileCache;
use crate::http::waiting_room_phase::RoomCtx;
use crate::log::format::{self, AccessRecord};
use crate::log::writer::LogThread;
use crate::shm::stats::StatsZone;
use crate::util::httpdate;
use crate::zones::Zones;
use std::sync::Arc;

/// Counters kept locally and stored into the worker's shm slot.
#[derive(Default, Debug, Clone, Copy)]
pub struct LocalCounters {
    /// Requests answered.
    pub requests: u64,
    /// Connections received.
    pub accepted: u64,
    /// Connections served (not refused).
    pub handled: u64,
    /// Connections that switched to HTTP/2.
    pub h2_connections: u64,
    /// HTTP/2 streams (requests) opened.
    pub h2_streams: u64,
}

/// Access-log buffers of one worker.
pub struct AccessLogs {
    thread: Option<LogThread>,
    bufs: Vec<Vec<u8>>,
    formats: Vec<LogFormat>,
    custom: Vec<crate::config::LogFormatConf>,
    scratch: Vec<u8>,
    buffer_bytes: Vec<usize>,
    flush_ms: Vec<u64>,
    last_flush_ms: Vec<u64>,
}

/// Index of the error log in the log thread's file list; access log `i` is `i + 1`.
pub const ERROR_LOG_FILE: usize = 0;

/// One `log_format` line: its text as written, each variable's value
/// escaped as the format says (an empty value is `-`, as nginx logs a value
/// that is not there).
fn custom_line(
    f: &crate::config::LogFormatConf,
    req: &crate::http::vars::ReqVars<'_>,
    resp: &crate::http::vars::RespVars<'_>,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    use crate::config::{LogEscape, Part};
    for p in &f.template.parts {
        match p {
            Part::Text(t) => out.extend_from_slice(t.as_bytes()),
            Part::Var(v) => {
                scratch.clear();
                crate::http::vars::eval_var(v, req, resp, scratch);
                if scratch.is_empty() {
                    out.push(b'-');
                    continue;
                }
                match f.escape {
                    LogEscape::None => out.extend_from_slice(scratch),
                    LogEscape::Json => crate::util::json::escape(scratch, out),
                    LogEscape::Default => {
                        for &b in scratch.iter() {
                            if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
                                out.extend_from_slice(b"\\x");
                                out.push(b"0123456789ABCDEF"[usize::from(b >> 4)]);
                                out.push(b"0123456789ABCDEF"[usize::from(b & 15)]);
                            } else {
                                out.push(b);
                            }
                        }
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

impl AccessLogs {
    /// Buffers for the access logs of `cfg`, writing through `thread`.
    pub fn new(cfg: &Config, thread: Option<LogThread>) -> AccessLogs {
        let n = cfg.http.access_logs.len();
        AccessLogs {
            thread,
            bufs: (0..n).map(|_| Vec::with_capacity(16 * 1024)).collect(),
            formats: cfg.http.access_logs.iter().map(|l| l.format).collect(),
            custom: cfg.http.log_formats.clone(),
            scratch: Vec::new(),
            buffer_bytes: cfg
                .http
                .access_logs
                .iter()
                .map(|l| l.buffer_bytes)
                .collect(),
            flush_ms: cfg.http.access_logs.iter().map(|l| l.flush_ms).collect(),
            last_flush_ms: vec![0; n],
        }
    }

    /// Append one line to log `idx`.
    pub fn record(
        &mut self,
        idx: usize,
        rec: &AccessRecord<'_>,
        vars: Option<(
            &crate::http::vars::ReqVars<'_>,
            &crate::http::vars::RespVars<'_>,
        )>,
    ) {
        let Some(buf) = self.bufs.get_mut(idx) else {
            return;
        };
        match (self.formats[idx], vars) {
            (LogFormat::Custom(f), Some((req, resp))) if f < self.custom.len() => {
                let f = &self.custom[f];
                custom_line(f, req, resp, &mut self.scratch, buf);
            }
            // A head that could not be parsed has no variables: combined.
            (LogFormat::Combined | LogFormat::Custom(_), _) => format::format_combined(rec, buf),
            (LogFormat::Json, _) => format::format_json(rec, buf),
        }
        if self.buffer_bytes[idx] > 0 && buf.len() >= self.buffer_bytes[idx] {
            self.send(idx);
        }
    }

    fn send(&mut self, idx: usize) {
        if self.bufs[idx].is_empty() {
            return;
        }
        match &self.thread {
            Some(t) => {
                let fresh = t.buffer();
                let full = std::mem::replace(&mut self.bufs[idx], fresh);
                t.write(idx + 1, full);
            }
            None => self.bufs[idx].clear(),
        }
    }

    /// End of a loop iteration: hand over unbuffered lines and timed flushes.
    pub fn before_sleep(&mut self, now_ms: u64) {
        for i in 0..self.bufs.len() {
            if self.bufs[i].is_empty() {
                continue;
            }
            let due = self.buffer_bytes[i] == 0
                || (self.flush_ms[i] > 0
                    && now_ms.saturating_sub(self.last_flush_ms[i]) >= self.flush_ms[i]);
            if due {
                self.send(i);
                self.last_flush_ms[i] = now_ms;
            }
        }
    }

    /// Hand over every buffered line and wait until it is written.
    pub fn flush_all(&mut self) {
        for i in 0..self.bufs.len() {
            self.send(i);
        }
        if let Some(t) = &self.thread {
            t.flush();
        }
    }

    /// Flush, then have the log thread reopen its files.
    pub fn reopen(&mut self) {
        self.flush_all();
        if let Some(t) = &self.thread {
            t.reopen();
        }
    }

    /// Flush and stop the log thread.
    pub fn stop(&mut self) {
        self.flush_all();
        if let Some(t) = self.thread.take() {
            t.stop();
        }
    }

    /// Whether the smallest timed flush needs the loop to wake up.
    pub fn wake_ms(&self) -> Option<u64> {
        self.flush_ms
            .iter()
            .zip(&self.bufs)
            .filter(|(f, b)| **f > 0 && !b.is_empty())
            .map(|(f, _)| *f)
            .min()
    }
}

/// Worker-wide state used by every connection.
pub struct HttpCtx {
    /// Routing.
    pub site: Site,
    /// Monotonic ms (cached per iteration).
    pub now_ms: u64,
    /// Wall-clock seconds (cached per iteration).
    pub unix_secs: i64,
    /// Current Date header value.
    pub date: [u8; 29],
    date_secs: i64,
    /// Open-file cache.
    pub files: FileCache,
    /// Scratch buffer for file system paths.
    pub fs_path: Vec<u8>,
    /// Access logs.
    pub logs: AccessLogs,
    /// Local counters.
    pub counters: LocalCounters,
    /// Graceful shutdown in progress: every response closes its connection.
    pub draining: bool,
    /// Shared counters, for `status;`.
    pub stats: Arc<StatsZone>,
    /// `Server:` value with tokens.
    pub server_full: Vec<u8>,
    /// Traffic-limit zones and the limits phase's scratch state.
    pub limits: LimitsCtx,
    /// The waiting-room phase's scratch state (cookie cache, pending cookie).
    pub rooms: RoomCtx,
    /// `auth_basic`'s htpasswd files and verified credentials.
    pub auth_files: crate::http::auth_basic::AuthFiles,
}

impl HttpCtx {
    /// The `Server` header value in `loc` (`server_tokens`).
    pub fn server_header(&self, loc: &crate::config::LocationConf) -> &[u8] {
        if loc.server_tokens {
            &self.server_full
        } else {
            b"sluice"
        }
    }

    /// State for a worker running `cfg`.
    pub fn new(
        cfg: Arc<Config>,
        logs: AccessLogs,
        stats: Arc<StatsZone>,
        zones: Arc<Zones>,
    ) -> HttpCtx {
        let mut ctx = HttpCtx {
            site: Site::new(cfg),
            now_ms: 0,
            unix_secs: 0,
            date: [b' '; 29],
            date_secs: -1,
            files: FileCache::default(),
            fs_path: Vec::with_capacity(512),
            logs,
            counters: LocalCounters::default(),
            draining: false,
            stats,
            server_full: format!("sluice/{}", env!("CARGO_PKG_VERSION")).into_bytes(),
            limits: LimitsCtx::new(zones),
            rooms: RoomCtx::default(),
            auth_files: Default::default(),
        };
        ctx.set_time(0, 0);
        ctx
    }

    /// Wall-clock ms of the limits clock (cached per loop iteration).
    pub fn now_unix_ms(&self) -> u64 {
        self.limits.now_us / 1000
    }

    /// Update the cached clock (once per loop iteration).
    pub fn set_time(&mut self, now_ms: u64, unix_secs: i64) {
        self.now_ms = now_ms;
        self.unix_secs = unix_secs;
        if unix_secs != self.date_secs {
            httpdate::format_http_date(unix_secs, &mut self.date);
            self.date_secs = unix_secs;
        }
    }
}
