//! Tests of cluster mode's directives: `cluster` and `cluster=on|off`.

use super::tests::{assert_err, http, load_ok};
use super::*;

#[test]
fn cluster_directive_with_defaults_and_every_parameter() {
    let c = load_ok(&http("cluster redis://127.0.0.1:6379;"));
    let cl = c.http.cluster.expect("cluster");
    assert_eq!(cl.url, "redis://127.0.0.1:6379");
    assert_eq!(
        (cl.sync_ms, cl.failure, cl.node.as_deref()),
        (100, ClusterFailure::Local, None)
    );
    assert_eq!(cl.stale_ms(), 300);
    let c = load_ok(&http(
        "cluster redis://:pw@redis.internal:7000/3 sync=1s failure=closed node=edge-1.eu:2;",
    ));
    let cl = c.http.cluster.expect("cluster");
    assert_eq!(
        (cl.sync_ms, cl.failure, cl.node.as_deref(), cl.stale_ms()),
        (1000, ClusterFailure::Closed, Some("edge-1.eu:2"), 3000)
    );
    assert_eq!(
        load_ok(&http("cluster redis://r:1 failure=open;"))
            .http
            .cluster
            .unwrap()
            .failure,
        ClusterFailure::Open
    );
}

#[test]
fn zones_become_global_with_cluster_on() {
    let c = load_ok(&http(
        "cluster redis://127.0.0.1:6379;\n\
         limit_req_zone $host zone=g:1m rate=20r/s cluster=on;\n\
         count_zone zone=c:1m window=60s cluster=on;\n\
         limit_bytes_zone $host zone=b:1m quota=1m per=1h cluster=off;\n\
         limit_req_zone $host zone=l:1m rate=1r/s;",
    ));
    let z = &c.http.limits.zones;
    let flags: Vec<bool> = z.iter().map(|z| z.cluster).collect();
    assert_eq!(flags, [true, true, false, false]);
    // A global key keeps three more words (see limits::cluster).
    assert_eq!(z[0].kind.payload_words(true), 4);
    assert_eq!(z[1].kind.payload_words(true), 63);
    assert_eq!(z[2].kind.payload_words(true), 3);
    assert_eq!(z[3].kind.payload_words(false), 1);
}

#[test]
fn cluster_errors_name_the_line() {
    assert_err(
        &http("limit_req_zone $host zone=g:1m rate=20r/s cluster=on;"),
        3,
        "zone \"g\" has cluster=on, but the http block has no \"cluster\" directive",
    );
    assert_err(
        &http("cluster redis://r:1;\nlimit_req_zone $host zone=g:1m rate=20r/s cluster=yes;"),
        4,
        "invalid parameter \"cluster=yes\" (on or off)",
    );
    assert_err(
        &http("cluster http://r:1;"),
        3,
        "invalid cluster address \"http://r:1\": expected redis://HOST:PORT[/DB]",
    );
    assert_err(
        &http("cluster redis://r;"),
        3,
        "invalid cluster address \"redis://r\": a port is required",
    );
    assert_err(
        &http("cluster redis://r:99999;"),
        3,
        "invalid cluster address \"redis://r:99999\": invalid port",
    );
    assert_err(
        &http("cluster redis://r:1/x;"),
        3,
        "invalid cluster address \"redis://r:1/x\": invalid database number",
    );
    assert_err(
        &http("cluster redis://r:1 sync=5ms;"),
        3,
        "invalid sync \"5ms\" (10ms to 60s)",
    );
    assert_err(
        &http("cluster redis://r:1 failure=maybe;"),
        3,
        "invalid failure \"maybe\" (open, closed, local)",
    );
    assert_err(
        &http("cluster redis://r:1 node=a/b;"),
        3,
        "invalid node \"a/b\" (1 to 64 letters, digits, \"_\", \"-\", \".\", \":\")",
    );
    assert_err(
        &http("cluster redis://r:1 speed=9;"),
        3,
        "invalid parameter \"speed=9\"",
    );
    assert_err(
        &http("cluster redis://r:1;\ncluster redis://r:2;"),
        4,
        "\"cluster\" directive is duplicate",
    );
    // A zone too small once the cluster words are added.
    assert_err(
        &http("cluster redis://r:1;\ncount_zone zone=c:8k window=60s precision=100ms cluster=on;"),
        4,
        "zone \"c\" is too small: each key takes 4848 bytes, at least 42880 bytes are needed",
    );
}

#[test]
fn a_global_room_needs_the_cluster_directive() {
    let dir = super::tests::TempDir::new("cluster-room");
    let key = dir.0.join("k");
    std::fs::write(&key, "k1 0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let room = format!(
        "waiting_room_secret {};\nwaiting_room_zone shop:64k admit_rate=10/m max_active=5 session=60s cluster=on;",
        key.display()
    );
    assert_err(
        &http(&room),
        4,
        "zone \"shop\" has cluster=on, but the http block has no \"cluster\" directive",
    );
    let c = load_ok(&http(&format!("{room}\ncluster redis://r:1;")));
    assert!(c.http.waiting_rooms.zones[0].cluster);
}
