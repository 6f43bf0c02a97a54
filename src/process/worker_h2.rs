//! The worker's side of HTTP/2 connections: each stream that proxies gets
//! its own `proxy::Session` (keyed like an HTTP/1.1 connection's, with the
//! stream found by its session), started, pumped on either socket's
//! readiness, timed out and closed here; the connection frames what they
//! write.

use super::Worker;
use crate::event::Tok;
use crate::proxy::session::{Next, Session};

/// How to drive a session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drive {
    Start,
    Pump,
    Timeout,
}

impl Worker {
    /// After an HTTP/2 connection ran (or a session of it): start the
    /// sessions its streams asked for, pump the others (`pump_all`: the
    /// client sent something — body, window), write, re-arm the timer.
    pub(super) fn after_h2(&mut self, key: usize, pump_all: bool) {
        self.h2_close_dead(key);
        if pump_all {
            let sessions = self.conns.get(key).map_or(Vec::new(), |c| c.h2_sessions());
            for sk in sessions {
                let Some((id, _)) = self.conns.get(key).and_then(|c| c.h2_stream_of(sk)) else {
                    continue;
                };
                if let Some(next) = self.h2_drive(key, id, sk, Drive::Pump) {
                    self.h2_after_next(key, id, sk, next);
                }
            }
        }
        // New sessions (a finished subrequest can ask for another).
        for _ in 0..256 {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let Some((id, req, _sub)) = c.h2_take_proxy() else {
                break;
            };
            let sk = self.sessions.vacant_entry().key();
            let s = Session::new(
                req,
                self.ctx.site.cfg.clone(),
                key,
                Tok::Upstream(sk).token(),
                self.ctx.now_ms,
            );
            self.sessions.insert(s);
            c.h2_set_session(id, sk);
            if let Some(next) = self.h2_drive(key, id, sk, Drive::Start) {
                self.h2_after_next(key, id, sk, next);
            }
        }
        self.h2_close_dead(key);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !c.h2_after_sessions(&mut self.ctx) {
            self.close_conn(key);
            return;
        }
        self.h2_close_dead(key);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        for sk in c.h2_sessions() {
            if let Some(s) = self.sessions.get(sk) {
                c.deadline_ms = c.deadline_ms.min(s.deadline_ms.max(1));
            }
        }
        if c.scheduled_ms == 0 || c.deadline_ms < c.scheduled_ms {
            self.wheel.schedule(key, c.deadline_ms);
            c.scheduled_ms = c.deadline_ms;
        }
    }

    /// Close the sessions of streams that are gone.
    fn h2_close_dead(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        for sk in c.h2_take_dead() {
            if let Some(mut s) = self.sessions.try_remove(sk) {
                s.close(&self.registry, &mut self.pools);
            }
        }
    }

    /// Run session `sk` of stream `id` once.
    fn h2_drive(&mut self, key: usize, id: u32, sk: usize, how: Drive) -> Option<Next> {
        let now = self.ctx.now_ms;
        let c = self.conns.get_mut(key)?;
        let s = self.sessions.get_mut(sk)?;
        let (ctx, pools, reg) = (&mut self.ctx, &mut self.pools, &self.registry);
        let sub = c.h2_sub(id).is_some();
        let next = if sub {
            let cap = c.h2_sub(id)?;
            match how {
                Drive::Start => match s.start(cap, ctx, pools, reg) {
                    Next::Wait => s.pump(cap, ctx, pools, reg),
                    n => n,
                },
                Drive::Pump => s.pump(cap, ctx, pools, reg),
                Drive::Timeout => s.on_timeout(cap, ctx, pools, reg),
            }
        } else {
            let mut io = c.h2_stream_io(id, now)?;
            match how {
                Drive::Start => match s.start(&mut io, ctx, pools, reg) {
                    Next::Wait => s.pump(&mut io, ctx, pools, reg),
                    n => n,
                },
                Drive::Pump => s.pump(&mut io, ctx, pools, reg),
                Drive::Timeout => s.on_timeout(&mut io, ctx, pools, reg),
            }
        };
        Some(next)
    }

    /// What a session's run means for its stream.
    fn h2_after_next(&mut self, key: usize, id: u32, sk: usize, next: Next) {
        match next {
            Next::Wait => {}
            Next::Finished | Next::Abort => {
                if let Some(mut s) = self.sessions.try_remove(sk) {
                    if next == Next::Abort {
                        s.close(&self.registry, &mut self.pools);
                    }
                }
                if let Some(c) = self.conns.get_mut(key) {
                    c.h2_session_done(&mut self.ctx, id, next == Next::Abort);
                }
            }
        }
    }

    /// Readiness of session `sk`'s upstream (or its cache read finished).
    pub(super) fn h2_upstream_ready(&mut self, key: usize, sk: usize) {
        let Some((id, _)) = self.conns.get(key).and_then(|c| c.h2_stream_of(sk)) else {
            return;
        };
        if let Some(next) = self.h2_drive(key, id, sk, Drive::Pump) {
            self.h2_after_next(key, id, sk, next);
        }
        self.after_h2(key, false);
    }

    /// The timer of an HTTP/2 connection fired: sessions past their
    /// deadline, then the connection's own.
    pub(super) fn h2_timer(&mut self, key: usize) {
        let now = self.ctx.now_ms;
        let sessions = self.conns.get(key).map_or(Vec::new(), |c| c.h2_sessions());
        for sk in sessions {
            if self.sessions.get(sk).is_none_or(|s| s.deadline_ms > now) {
                continue;
            }
            let Some((id, _)) = self.conns.get(key).and_then(|c| c.h2_stream_of(sk)) else {
                continue;
            };
            if let Some(next) = self.h2_drive(key, id, sk, Drive::Timeout) {
                self.h2_after_next(key, id, sk, next);
            }
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !c.on_timeout(&mut self.ctx) {
            self.close_conn(key);
            return;
        }
        self.after_h2(key, false);
    }
}
