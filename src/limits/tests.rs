//! Zone-level tests: real zone files in a temp directory, a fake clock.

use super::*;
use crate::config::{load_str, Config};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

const SEC_US: u64 = 1_000_000;
/// The fake clock's "now": a fixed wall time in ms.
const NOW_MS: u64 = 1_800_000_000_000;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("sluice-limits-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn conf(dir: &Path, zones: &str) -> Config {
    let text = format!(
        "state_dir {};\nevents {{}}\nhttp {{\n{zones}\nserver {{ listen 127.0.0.1:1; }}\n}}\n",
        dir.display()
    );
    match load_str(&text, Path::new("/etc/sluice/sluice.conf"), None) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn rate_zone(size: &str, rate: &str) -> String {
    format!("limit_req_zone $binary_remote_addr zone=ip:{size} rate={rate};")
}

fn take(z: &LimitZone, key: &[u8], g: &Gcra, now_us: u64) -> bool {
    matches!(
        z.rate_check(z.key_hash(key), g, now_us),
        Some((Verdict::Allow { .. }, _, _))
    )
}

#[test]
fn rate_state_survives_a_restart() {
    let d = Dir::new("restart");
    let cfg = conf(&d.0, &rate_zone("64k", "1r/s"));
    let g = Gcra::new(SEC_US, 2, None);
    let now = NOW_MS * 1000;
    {
        let set = ZoneSet::open(&cfg, None).unwrap();
        let z = set.get(0).unwrap();
        let n = (0..10).filter(|_| take(z, b"a", &g, now)).count();
        assert_eq!(n, 3);
    }
    // A new master (restart, or after kill -9): nothing more for "a".
    let set = ZoneSet::open(&cfg, None).unwrap();
    let z = set.get(0).unwrap();
    assert!(!take(z, b"a", &g, now));
    assert!(take(z, b"b", &g, now));
    assert_eq!(
        z.metric(Metric::Allowed).load(Relaxed),
        0,
        "metrics are the caller's to add"
    );
}

#[test]
fn reload_keeps_the_mapping_and_a_new_rate_migrates_in_place() {
    let d = Dir::new("reload");
    let cfg = conf(&d.0, &rate_zone("64k", "1r/s"));
    let set = ZoneSet::open(&cfg, None).unwrap();
    let g = Gcra::new(SEC_US, 0, None);
    let now = NOW_MS * 1000;
    assert!(take(set.get(0).unwrap(), b"k", &g, now));
    let cfg2 = conf(&d.0, &rate_zone("64k", "2r/s"));
    let set2 = ZoneSet::open(&cfg2, Some(&set)).unwrap();
    let z2 = set2.get(0).unwrap();
    // Same pages: what one generation wrote the other sees at once.
    assert!(!take(z2, b"k", &Gcra::new(SEC_US / 2, 0, None), now));
    assert!(!take(set.get(0).unwrap(), b"k", &g, now));
}

#[test]
fn a_bigger_zone_migrates_every_live_key() {
    let d = Dir::new("resize");
    let g = Gcra::new(SEC_US, 0, None);
    let now = NOW_MS * 1000;
    {
        let set = ZoneSet::open(&conf(&d.0, &rate_zone("32k", "1r/m")), None).unwrap();
        let z = set.get(0).unwrap();
        for i in 0..100u32 {
            assert!(take(z, &i.to_le_bytes(), &g, now));
        }
    }
    let set = ZoneSet::open(&conf(&d.0, &rate_zone("128k", "1r/m")), None).unwrap();
    let z = set.get(0).unwrap();
    assert_eq!(z.stats(NOW_MS).slots, (128 * 1024 - 4096) / 32);
    for i in 0..100u32 {
        assert!(
            !take(z, &i.to_le_bytes(), &g, now),
            "key {i} lost its state"
        );
    }
    assert!(!d.0.join("ip.zone.tmp").exists());
}

#[test]
fn a_new_window_rebuilds_the_counter_zone() {
    let d = Dir::new("rebuild");
    let k = |z: &LimitZone| z.key_hash(b"");
    {
        let set = ZoneSet::open(
            &conf(&d.0, "count_zone zone=c:1m window=10s precision=1s;"),
            None,
        )
        .unwrap();
        let z = set.get(0).unwrap();
        for _ in 0..5 {
            z.count_add(k(z), NOW_MS);
        }
        assert_eq!(z.count_sum(k(z), NOW_MS), 5);
    }
    let same = ZoneSet::open(
        &conf(&d.0, "count_zone zone=c:1m window=10s precision=1s;"),
        None,
    )
    .unwrap();
    let z = same.get(0).unwrap();
    assert_eq!(z.count_sum(k(z), NOW_MS + 100), 5);
    drop(same);
    let other = ZoneSet::open(
        &conf(&d.0, "count_zone zone=c:1m window=20s precision=1s;"),
        None,
    )
    .unwrap();
    let z = other.get(0).unwrap();
    assert_eq!(z.count_sum(k(z), NOW_MS + 100), 0);
}

#[test]
fn a_corrupt_zone_file_is_set_aside() {
    let d = Dir::new("corrupt");
    let cfg = conf(&d.0, &rate_zone("64k", "1r/s"));
    drop(ZoneSet::open(&cfg, None).unwrap());
    std::fs::write(d.0.join("ip.zone"), vec![0xabu8; 64 * 1024]).unwrap();
    let set = ZoneSet::open(&cfg, None).unwrap();
    assert!(take(
        set.get(0).unwrap(),
        b"x",
        &Gcra::new(SEC_US, 0, None),
        NOW_MS * 1000
    ));
    let aside: Vec<_> = std::fs::read_dir(&d.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("ip.zone.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
}

#[test]
fn a_full_zone_evicts_and_counts_it() {
    let d = Dir::new("full");
    // 8k: one page of header, 128 slots of 32 bytes.
    let set = ZoneSet::open(&conf(&d.0, &rate_zone("8k", "1r/m")), None).unwrap();
    let z = set.get(0).unwrap();
    let g = Gcra::new(60 * SEC_US, 0, None);
    for i in 0..1000u32 {
        assert!(take(z, &i.to_le_bytes(), &g, NOW_MS * 1000 + i as u64));
    }
    let s = z.stats(NOW_MS + 1);
    assert_eq!(s.slots, 128);
    assert_eq!(s.keys, 128);
    assert!(s.metrics[Metric::Evictions as usize] >= 1000 - 128);
}

/// Set in the child process of [`counters_are_shared_with_another_process`]:
/// the state directory to count into.
const CHILD_DIR_ENV: &str = "SLUICE_TEST_ZONE_CHILD_DIR";

#[test]
fn counters_are_shared_with_another_process() {
    // Not a fork inside the test harness (it runs other threads): the test
    // binary runs this test again as a separate process that opens the same
    // zone file, as a worker of a new generation would.
    let zone = "count_zone zone=c:1m window=60s precision=100ms;";
    if let Some(dir) = std::env::var_os(CHILD_DIR_ENV) {
        let set = ZoneSet::open(&conf(Path::new(&dir), zone), None).unwrap();
        let z = set.get(0).unwrap();
        for i in 0..1000 {
            z.count_add(z.key_hash(b""), NOW_MS + i);
        }
        return;
    }
    let d = Dir::new("shared");
    let set = ZoneSet::open(&conf(&d.0, zone), None).unwrap();
    let z = set.get(0).unwrap();
    let k = z.key_hash(b"");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "limits::tests::counters_are_shared_with_another_process",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_DIR_ENV, &d.0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for i in 0..1000 {
        z.count_add(k, NOW_MS + i);
    }
    assert!(child.wait().unwrap().success(), "the child process failed");
    assert_eq!(z.count_sum(k, NOW_MS + 1000), 2000);
}

#[test]
fn quota_refuses_until_the_period_rolls() {
    let d = Dir::new("quota");
    let set = ZoneSet::open(
        &conf(&d.0, "limit_bytes_zone $host zone=b:64k quota=10k per=1m;"),
        None,
    )
    .unwrap();
    let z = set.get(0).unwrap();
    let k = z.key_hash(b"example.com");
    let (slot, over) = z.quota_check(k, NOW_MS).unwrap();
    assert_eq!(over, None);
    z.quota_add(slot, NOW_MS, 10 * 1024);
    assert_eq!(z.quota_check(k, NOW_MS + 1).unwrap().1, Some(59_999));
    assert_eq!(z.quota_check(k, NOW_MS + 60_000).unwrap().1, None);
}
