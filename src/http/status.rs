//! `status;`: counters from shared memory as Prometheus text, or JSON when
//! the client asks for `application/json`. Totals include workers that have
//! exited (reloads, crashes), so counters never go backwards. Each limit
//! zone adds its decisions (allowed, delayed, rejected, dry-run), keys in
//! use, capacity, evictions, and requests counted or bytes accounted; those
//! live in the zone files and survive restarts too.

use crate::limits::cluster::{self as cl, Gate};
use crate::limits::{Metric, ZoneStats};
use crate::shm::stats::StatsZone;
use crate::shm::zone::ZoneHeader;
use crate::waiting_room::{Reject, RoomStats};
use crate::zones::Zones;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

struct Row {
    worker: usize,
    pid: u64,
    requests: u64,
    accepted: u64,
    handled: u64,
    active: u64,
    reading: u64,
    writing: u64,
}

fn rows(stats: &StatsZone) -> Vec<Row> {
    stats
        .slots()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.pid.load(Relaxed) != 0)
        .map(|(i, s)| Row {
            worker: i,
            pid: s.pid.load(Relaxed),
            requests: s.requests.load(Relaxed),
            accepted: s.accepted.load(Relaxed),
            handled: s.handled.load(Relaxed),
            active: s.active.load(Relaxed),
            reading: s.reading.load(Relaxed),
            writing: s.writing.load(Relaxed),
        })
        .collect()
}

/// Render the status page (`now_ms`: wall clock, for key expiry); returns
/// (content type, body).
pub fn render(
    stats: &StatsZone,
    zones: &Zones,
    now_ms: u64,
    json: bool,
) -> (&'static [u8], Vec<u8>) {
    let zone_stats: Vec<ZoneStats> = zones
        .limits
        .zones()
        .iter()
        .map(|z| z.stats(now_ms))
        .collect();
    let rooms: Vec<(&str, RoomStats)> = zones
        .rooms
        .rooms()
        .iter()
        .filter_map(|z| Some((z.conf.name.as_str(), z.room(now_ms)?.stats(now_ms * 1000))))
        .collect();
    let t = stats.totals();
    let rows = rows(stats);
    let idle = t.active.saturating_sub(t.reading + t.writing);
    let mut s = String::with_capacity(2048);
    if json {
        let _ = write!(
            s,
            "{{\"requests\":{},\"connections\":{{\"accepted\":{},\"handled\":{},\"active\":{},\"reading\":{},\"writing\":{},\"idle\":{}}},\"http2\":{{\"connections\":{},\"streams\":{}}},\"reloads\":{},\"respawns\":{},\"workers\":[",
            t.requests, t.accepted, t.handled, t.active, t.reading, t.writing, idle, t.h2_connections, t.h2_streams, t.reloads, t.respawns
        );
        for (i, r) in rows.iter().enumerate() {
            let _ = write!(
                s,
                "{}{{\"slot\":{},\"pid\":{},\"requests\":{},\"accepted\":{},\"handled\":{},\"active\":{},\"reading\":{},\"writing\":{}}}",
                if i > 0 { "," } else { "" },
                r.worker, r.pid, r.requests, r.accepted, r.handled, r.active, r.reading, r.writing
            );
        }
        s.push_str("],\"limits\":{");
        for (i, z) in zone_stats.iter().enumerate() {
            let _ = write!(
                s,
                "{}\"{}\":{{\"kind\":\"{}\"",
                if i > 0 { "," } else { "" },
                z.name,
                z.kind
            );
            for m in Metric::ALL {
                let _ = write!(s, ",\"{}\":{}", m.as_str(), z.metrics[m as usize]);
            }
            let _ = write!(s, ",\"keys\":{},\"capacity\":{}}}", z.keys, z.slots);
        }
        s.push_str("},\"waiting_rooms\":{");
        for (i, (name, r)) in rooms.iter().enumerate() {
            let _ = write!(
                s,
                "{}\"{name}\":{{\"admitted\":{},\"waiting_pages\":{},\"queued\":{},\"refused\":{},\"active_sessions\":{},\"queue_length\":{},\"estimated_wait_ms\":{},\"rejected_tokens\":{{",
                if i > 0 { "," } else { "" },
                r.admitted,
                r.wait_pages,
                r.queued,
                r.refused,
                r.active,
                r.queue_len,
                r.wait_ms
            );
            for (j, why) in Reject::ALL.iter().enumerate() {
                let _ = write!(
                    s,
                    "{}\"{}\":{}",
                    if j > 0 { "," } else { "" },
                    why.as_str(),
                    r.token_rejects[j]
                );
            }
            s.push_str("}}");
        }
        s.push('}');
        render_cluster_json(&cluster_rows(zones, now_ms), &mut s);
        s.push_str("}\n");
        return (b"application/json", s.into_bytes());
    }
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        u64,
        fn(&Row) -> u64,
    );
    let families: [Family; 7] = [
        (
            "requests_total",
            "counter",
            "Requests answered.",
            t.requests,
            |r| r.requests,
        ),
        (
            "connections_accepted_total",
            "counter",
            "Client connections received.",
            t.accepted,
            |r| r.accepted,
        ),
        (
            "connections_handled_total",
            "counter",
            "Client connections served (not refused).",
            t.handled,
            |r| r.handled,
        ),
        (
            "connections_active",
            "gauge",
            "Open client connections.",
            t.active,
            |r| r.active,
        ),
        (
            "connections_reading",
            "gauge",
            "Connections reading a request.",
            t.reading,
            |r| r.reading,
        ),
        (
            "connections_writing",
            "gauge",
            "Connections writing a response.",
            t.writing,
            |r| r.writing,
        ),
        (
            "connections_idle",
            "gauge",
            "Idle keep-alive connections.",
            idle,
            |r| r.active.saturating_sub(r.reading + r.writing),
        ),
    ];
    for (name, kind, help, total, get) in families {
        let _ = writeln!(
            s,
            "# HELP sluice_{name} {help}\n# TYPE sluice_{name} {kind}\nsluice_{name} {total}"
        );
        let _ = writeln!(
            s,
            "# HELP sluice_worker_{name} {help} Per worker.\n# TYPE sluice_worker_{name} {kind}"
        );
        for r in &rows {
            let _ = writeln!(
                s,
                "sluice_worker_{name}{{slot=\"{}\",pid=\"{}\"}} {}",
                r.worker,
                r.pid,
                get(r)
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP sluice_http2_connections_total Client connections that speak HTTP/2.\n# TYPE sluice_http2_connections_total counter\nsluice_http2_connections_total {}\n\
         # HELP sluice_http2_streams_total HTTP/2 streams (requests) opened.\n# TYPE sluice_http2_streams_total counter\nsluice_http2_streams_total {}",
        t.h2_connections, t.h2_streams
    );
    let _ = writeln!(
        s,
        "# HELP sluice_reloads_total Configuration reloads.\n# TYPE sluice_reloads_total counter\nsluice_reloads_total {}",
        t.reloads
    );
    let _ = writeln!(
        s,
        "# HELP sluice_worker_respawns_total Workers respawned after dying.\n# TYPE sluice_worker_respawns_total counter\nsluice_worker_respawns_total {}",
        t.respawns
    );
    render_limits_text(&zone_stats, &mut s);
    render_rooms_text(&rooms, &mut s);
    render_cluster_text(&cluster_rows(zones, now_ms), &mut s);
    (b"text/plain; version=0.0.4", s.into_bytes())
}

/// The sync state of one global zone or room.
struct ClusterRow<'a> {
    name: &'a str,
    gate: Gate,
    syncs: u64,
    failures: u64,
    /// Milliseconds since the last successful sync (`None`: never).
    age_ms: Option<u64>,
}

fn cluster_rows(zones: &Zones, now_ms: u64) -> Vec<ClusterRow<'_>> {
    let row = |name, gate, h: &ZoneHeader| {
        let last = h.metrics[cl::H_LAST_OK_MS].load(Relaxed);
        ClusterRow {
            name,
            gate,
            syncs: h.metrics[cl::H_SYNCS].load(Relaxed),
            failures: h.metrics[cl::H_FAILURES].load(Relaxed),
            age_ms: (last > 0).then(|| now_ms.saturating_sub(last)),
        }
    };
    let limits = zones
        .limits
        .zones()
        .iter()
        .filter_map(|z| Some(row(z.name(), z.gate(now_ms)?, z.header())));
    let rooms = zones
        .rooms
        .rooms()
        .iter()
        .filter_map(|r| Some(row(r.conf.name.as_str(), r.gate(now_ms)?, r.header())));
    limits.chain(rooms).collect()
}

/// (synced, failure mode in force or "none", nodes)
fn gate_parts(g: Gate) -> (bool, &'static str, u64) {
    match g {
        Gate::Synced { nodes } => (true, "none", nodes),
        Gate::Failed { mode, nodes } => (false, mode.as_str(), nodes),
    }
}

fn render_cluster_json(rows: &[ClusterRow<'_>], s: &mut String) {
    s.push_str(",\"cluster\":{");
    for (i, r) in rows.iter().enumerate() {
        let (synced, mode, nodes) = gate_parts(r.gate);
        let _ = write!(
            s,
            "{}\"{}\":{{\"synced\":{synced},\"failure_mode_applied\":\"{mode}\",\"nodes\":{nodes},\"syncs\":{},\"sync_failures\":{},\"last_sync_ms_ago\":{}}}",
            if i > 0 { "," } else { "" },
            r.name,
            r.syncs,
            r.failures,
            r.age_ms.map_or("null".to_string(), |a| a.to_string())
        );
    }
    s.push('}');
}

fn render_cluster_text(rows: &[ClusterRow<'_>], s: &mut String) {
    if rows.is_empty() {
        return;
    }
    s.push_str("# HELP sluice_cluster_synced 1 if the global zone synced with Redis recently, 0 if its failure mode applies.\n# TYPE sluice_cluster_synced gauge\n");
    for r in rows {
        let (synced, mode, _) = gate_parts(r.gate);
        let _ = writeln!(
            s,
            "sluice_cluster_synced{{zone=\"{}\",failure_mode_applied=\"{mode}\"}} {}",
            r.name, synced as u8
        );
    }
    s.push_str("# HELP sluice_cluster_nodes Live nodes at the last sync.\n# TYPE sluice_cluster_nodes gauge\n");
    for r in rows {
        let _ = writeln!(
            s,
            "sluice_cluster_nodes{{zone=\"{}\"}} {}",
            r.name,
            gate_parts(r.gate).2
        );
    }
    s.push_str("# HELP sluice_cluster_syncs_total Successful syncs.\n# TYPE sluice_cluster_syncs_total counter\n");
    for r in rows {
        let _ = writeln!(
            s,
            "sluice_cluster_syncs_total{{zone=\"{}\"}} {}",
            r.name, r.syncs
        );
    }
    s.push_str("# HELP sluice_cluster_sync_failures_total Failed syncs (Redis down or slow).\n# TYPE sluice_cluster_sync_failures_total counter\n");
    for r in rows {
        let _ = writeln!(
            s,
            "sluice_cluster_sync_failures_total{{zone=\"{}\"}} {}",
            r.name, r.failures
        );
    }
}

fn render_rooms_text(rooms: &[(&str, RoomStats)], s: &mut String) {
    if rooms.is_empty() {
        return;
    }
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&RoomStats) -> u64,
    );
    let families: [Family; 7] = [
        ("admitted_total", "counter", "Users admitted.", |r| {
            r.admitted
        }),
        (
            "queued_total",
            "counter",
            "Places handed out in the queue.",
            |r| r.queued,
        ),
        ("wait_pages_total", "counter", "Wait pages served.", |r| {
            r.wait_pages
        }),
        (
            "refused_total",
            "counter",
            "Users turned away (mode=reject, max_wait).",
            |r| r.refused,
        ),
        ("active_sessions", "gauge", "Sessions active now.", |r| {
            r.active
        }),
        (
            "queue_length",
            "gauge",
            "Users waiting (slots still ahead).",
            |r| r.queue_len,
        ),
        (
            "estimated_wait_seconds",
            "gauge",
            "Wait of a new arrival.",
            |r| r.wait_ms / 1000,
        ),
    ];
    for (name, kind, help, get) in families {
        let _ = writeln!(
            s,
            "# HELP sluice_waiting_room_{name} {help}\n# TYPE sluice_waiting_room_{name} {kind}"
        );
        for (zone, r) in rooms {
            let _ = writeln!(
                s,
                "sluice_waiting_room_{name}{{zone=\"{zone}\"}} {}",
                get(r)
            );
        }
    }
    s.push_str("# HELP sluice_waiting_room_rejected_tokens_total Tokens and cookies ignored, by reason.\n# TYPE sluice_waiting_room_rejected_tokens_total counter\n");
    for (zone, r) in rooms {
        for why in Reject::ALL {
            let _ = writeln!(
                s,
                "sluice_waiting_room_rejected_tokens_total{{zone=\"{zone}\",reason=\"{}\"}} {}",
                why.as_str(),
                r.token_rejects[why as usize]
            );
        }
    }
}

fn render_limits_text(zones: &[ZoneStats], s: &mut String) {
    if zones.is_empty() {
        return;
    }
    s.push_str("# HELP sluice_limit_decisions_total Limit decisions per zone.\n# TYPE sluice_limit_decisions_total counter\n");
    for z in zones {
        for m in [
            Metric::Allowed,
            Metric::Delayed,
            Metric::Rejected,
            Metric::DryRun,
        ] {
            let _ = writeln!(
                s,
                "sluice_limit_decisions_total{{zone=\"{}\",decision=\"{}\"}} {}",
                z.name,
                m.as_str(),
                z.metrics[m as usize]
            );
        }
    }
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ZoneStats) -> u64,
    );
    let families: [Family; 5] = [
        ("keys", "gauge", "Keys in use per zone.", |z| z.keys),
        ("capacity_keys", "gauge", "Keys a zone can hold.", |z| {
            z.slots
        }),
        (
            "evictions_total",
            "counter",
            "Live keys evicted from a full zone.",
            |z| z.metrics[Metric::Evictions as usize],
        ),
        (
            "counted_total",
            "counter",
            "Requests counted (count_zone).",
            |z| z.metrics[Metric::Counted as usize],
        ),
        (
            "bytes_total",
            "counter",
            "Bytes accounted (limit_bytes_zone).",
            |z| z.metrics[Metric::Bytes as usize],
        ),
    ];
    for (name, kind, help, get) in families {
        let _ = writeln!(
            s,
            "# HELP sluice_limit_{name} {help}\n# TYPE sluice_limit_{name} {kind}"
        );
        for z in zones {
            let _ = writeln!(s, "sluice_limit_{name}{{zone=\"{}\"}} {}", z.name, get(z));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_per_worker_lines() {
        let z = StatsZone::new().unwrap();
        let a = z.claim(11, 1).unwrap();
        let b = z.claim(12, 1).unwrap();
        z.slot(a).requests.store(3, Relaxed);
        z.slot(b).requests.store(4, Relaxed);
        z.slot(b).active.store(2, Relaxed);
        let zones = Zones::empty();
        let (_, body) = render(&z, &zones, 0, false);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("\nsluice_requests_total 7\n"), "{text}");
        assert!(text.contains("sluice_worker_requests_total{slot=\"1\",pid=\"12\"} 4"));
        assert!(text.contains("\nsluice_connections_idle 2\n"));
        let (ct, body) = render(&z, &zones, 0, true);
        assert_eq!(ct, b"application/json");
        assert!(String::from_utf8(body)
            .unwrap()
            .starts_with("{\"requests\":7,"));
    }
}
