//! Unit tests of the balancing methods: nginx's sequences and fallbacks.

use super::super::{Pool, Tried};
use super::Pick;
use crate::config::{Balance, PeerAddr, Template, UpstreamConf, UpstreamServer};
use std::collections::HashMap;
use std::net::IpAddr;

fn server(i: usize, weight: u32, backup: bool) -> UpstreamServer {
    let name = format!("127.0.0.1:{}", 9000 + i);
    let mut s = UpstreamServer::new(&name, PeerAddr::Inet(name.parse().unwrap()));
    s.weight = weight;
    s.backup = backup;
    s.max_fails = 2;
    s.fail_timeout_ms = 1000;
    s
}

fn pool_of(balance: Balance, servers: Vec<UpstreamServer>) -> Pool {
    Pool::new(&UpstreamConf {
        name: "u".into(),
        servers,
        keepalive: 2,
        balance,
        zone: None,
        implicit: false,
        https: false,
    })
}

fn pool(weights: &[(u32, bool)]) -> Pool {
    pool_of(
        Balance::RoundRobin,
        weights
            .iter()
            .enumerate()
            .map(|(i, &(w, b))| server(i, w, b))
            .collect(),
    )
}

fn at(now_ms: u64) -> Pick<'static> {
    Pick {
        now_ms,
        client: IpAddr::from([10, 0, 0, 1]),
        key: b"",
    }
}

fn pick(p: &mut Pool, now_ms: u64, tried: &[usize]) -> Option<usize> {
    let mut t = Tried::default();
    for &i in tried {
        t.insert(i);
    }
    p.pick(&at(now_ms), &mut t)
}

#[test]
fn smooth_weighted_round_robin() {
    let mut p = pool(&[(5, false), (1, false), (1, false)]);
    let picks: Vec<usize> = (0..7).map(|_| pick(&mut p, 0, &[]).unwrap()).collect();
    // nginx's sequence for 5/1/1: a a b a c a a
    assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn max_fails_marks_down_then_recovers() {
    let mut p = pool(&[(1, false), (1, false)]);
    p.failed(0, 100);
    assert!(
        (0..4).any(|_| pick(&mut p, 200, &[]) == Some(0)),
        "one failure is not enough"
    );
    p.failed(0, 150);
    for _ in 0..4 {
        assert_eq!(pick(&mut p, 300, &[]), Some(1));
    }
    // After fail_timeout the server is back.
    assert!((0..4).any(|_| pick(&mut p, 1200, &[]) == Some(0)));
}

#[test]
fn backups_only_when_primaries_are_down_or_tried() {
    let mut p = pool(&[(1, false), (1, true)]);
    assert_eq!(pick(&mut p, 0, &[]), Some(0));
    assert_eq!(pick(&mut p, 0, &[0]), Some(1));
    assert_eq!(pick(&mut p, 0, &[0, 1]), None);
}

#[test]
fn down_servers_are_never_picked_and_max_conns_caps_each() {
    let mut servers: Vec<_> = (0..3).map(|i| server(i, 1, false)).collect();
    servers[1].down = true;
    servers[2].max_conns = 1;
    let mut p = pool_of(Balance::RoundRobin, servers);
    let mut held = Vec::new();
    for _ in 0..6 {
        let i = pick(&mut p, 0, &[]).unwrap();
        assert_ne!(i, 1, "a down server");
        held.push(p.hold(i).unwrap());
    }
    assert_eq!(p.peers[2].active(), 1, "max_conns=1");
    held.clear();
    assert_eq!(p.peers[2].active(), 0);
}

#[test]
fn least_conn_prefers_fewer_requests_per_weight_then_round_robin() {
    let mut p = pool_of(
        Balance::LeastConn,
        vec![server(0, 1, false), server(1, 2, false)],
    );
    // Nobody busy: a tie, broken by weighted round robin (b first: weight 2).
    assert_eq!(pick(&mut p, 0, &[]), Some(1));
    let _a = p.hold(0).unwrap();
    // a has 1/1, b 0/2: b.
    assert_eq!(pick(&mut p, 0, &[]), Some(1));
    let _b1 = p.hold(1).unwrap();
    let _b2 = p.hold(1).unwrap();
    let _b3 = p.hold(1).unwrap();
    // a 1/1 < b 3/2.
    assert_eq!(pick(&mut p, 0, &[]), Some(0));
    assert_eq!(pick(&mut p, 0, &[0]), Some(1));
}

#[test]
fn ip_hash_keeps_a_24_on_one_server_and_moves_on_when_it_is_down() {
    let mut p = pool_of(
        Balance::IpHash,
        (0..3).map(|i| server(i, 1, false)).collect(),
    );
    let of = |p: &mut Pool, ip: [u8; 4], tried: &mut Tried| {
        p.pick(
            &Pick {
                now_ms: 0,
                client: IpAddr::from(ip),
                key: b"",
            },
            tried,
        )
        .unwrap()
    };
    let first = of(&mut p, [192, 168, 1, 10], &mut Tried::default());
    for last in [1, 77, 254] {
        assert_eq!(
            of(&mut p, [192, 168, 1, last], &mut Tried::default()),
            first
        );
    }
    // nginx's arithmetic: 89, then (h * 113 + octet) % 6271 for 192.168.1.
    let mut h: u64 = 89;
    for b in [192u64, 168, 1] {
        h = (h * 113 + b) % 6271;
    }
    assert_eq!(first as u64, h % 3);
    // Tried: the hash goes on from where it was, to another server.
    let mut t = Tried::default();
    let a = of(&mut p, [192, 168, 1, 10], &mut t);
    t.insert(a);
    let b = of(&mut p, [192, 168, 1, 10], &mut t);
    assert_ne!(a, b);
    // Different /24s spread over the servers.
    let mut seen = [0; 3];
    for n in 0..=255u8 {
        seen[of(&mut p, [10, n, 7, 1], &mut Tried::default())] += 1;
    }
    assert!(seen.iter().all(|&c| c > 40), "{seen:?}");
}

fn hash_pool(consistent: bool, n: usize) -> Pool {
    pool_of(
        Balance::Hash {
            key: Template::compile("$request_uri").unwrap(),
            consistent,
        },
        (0..n).map(|i| server(i, 1, false)).collect(),
    )
}

fn by_key(p: &mut Pool, key: &[u8]) -> usize {
    p.pick(
        &Pick {
            now_ms: 0,
            client: IpAddr::from([10, 0, 0, 1]),
            key,
        },
        &mut Tried::default(),
    )
    .unwrap()
}

#[test]
fn hash_is_memcached_compatible() {
    let mut p = hash_pool(false, 3);
    for key in [&b"/a"[..], b"/b", b"/some/longer/key?x=1"] {
        let h = (crate::util::hash::crc32(key) >> 16) & 0x7fff;
        assert_eq!(by_key(&mut p, key), (h % 3) as usize);
        assert_eq!(by_key(&mut p, key), by_key(&mut p, key));
    }
}

#[test]
fn consistent_hash_has_160_points_per_weight_and_moves_few_keys() {
    let p3 = hash_pool(true, 3);
    assert_eq!(p3.points.len(), 480);
    let mut heavy: Vec<_> = (0..2).map(|i| server(i, 1, false)).collect();
    heavy[1].weight = 3;
    let ph = pool_of(
        Balance::Hash {
            key: Template::compile("$uri").unwrap(),
            consistent: true,
        },
        heavy,
    );
    assert_eq!(ph.points.len(), 160 * 4);
    // Removing one server of four moves only that server's keys.
    let mut p4 = hash_pool(true, 4);
    let mut p3 = hash_pool(true, 3);
    let mut moved = 0;
    let mut per: HashMap<usize, usize> = HashMap::new();
    for n in 0..2000 {
        let key = format!("/k/{n}");
        let a = by_key(&mut p4, key.as_bytes());
        let b = by_key(&mut p3, key.as_bytes());
        *per.entry(a).or_default() += 1;
        if a != 3 {
            assert_eq!(a, b, "{key} moved though its server stayed");
        } else {
            moved += 1;
        }
    }
    assert!(moved > 250 && moved < 800, "{moved}");
    assert_eq!(per.len(), 4);
}

#[test]
fn consistent_hash_points_are_nginx_ketama() {
    // The first point of "127.0.0.1:9000": crc32("127.0.0.1\0" "9000" + LE(0)).
    let p = hash_pool(true, 1);
    let first = crate::util::hash::Crc32::new()
        .update(b"127.0.0.1\09000")
        .update(&0u32.to_le_bytes())
        .finish();
    assert!(p.points.iter().any(|&(h, _)| h == first));
}

#[test]
fn a_down_server_hands_its_keys_to_the_next_point() {
    let mut p = hash_pool(true, 3);
    let keys: Vec<String> = (0..300).map(|n| format!("/x/{n}")).collect();
    let before: Vec<usize> = keys.iter().map(|k| by_key(&mut p, k.as_bytes())).collect();
    p.peers[1].down = true;
    for (k, &b) in keys.iter().zip(&before) {
        let now = by_key(&mut p, k.as_bytes());
        assert_ne!(now, 1);
        if b != 1 {
            assert_eq!(now, b);
        }
    }
}

#[test]
fn random_follows_weights_and_two_prefers_the_idle_one() {
    let mut servers: Vec<_> = (0..2).map(|i| server(i, 1, false)).collect();
    servers[1].weight = 3;
    let mut p = pool_of(Balance::Random { two: false }, servers);
    let mut n = [0; 2];
    for _ in 0..4000 {
        n[pick(&mut p, 0, &[]).unwrap()] += 1;
    }
    assert!(n[1] > 2 * n[0] && n[1] < 4 * n[0], "{n:?}");
    let mut p = pool_of(
        Balance::Random { two: true },
        (0..2).map(|i| server(i, 1, false)).collect(),
    );
    let _busy: Vec<_> = (0..3).map(|_| p.hold(0).unwrap()).collect();
    for _ in 0..50 {
        assert_eq!(pick(&mut p, 0, &[]), Some(1));
    }
}
