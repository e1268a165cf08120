//! LIST, NLST and MLSD of a prefix with 100,000 objects on Garage, through
//! `ferroftp serve --storage s3`: every entry arrives, once, and the
//! server's memory stays flat, because the backend streams the listing a
//! page (1,000 keys) at a time instead of building it whole.
//!
//! The objects are written straight through the S3 backend (64 PUTs in
//! flight), which takes about a minute on two cores; FERROFTP_S3_LIST_OBJECTS
//! sets another count.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ftp_storage::{Backend, FtpPath, WriteMode};
use ftp_storage_s3::{S3Backend, S3Options};

use crate::common::{RawClient, TestServer};
use crate::s3_util::{s3_flags, s3_table, unique_prefix, Garage};

/// Growth of the server's resident memory allowed while it lists, over
/// what it used after listing a handful of entries. 100,000 entries held
/// at once (name, size, time) would be well over 10 MiB; a page of 1,000
/// and the transfer buffers are well under this.
const MAX_GROWTH_KIB: u64 = 6 * 1024;

fn object_count() -> usize {
    std::env::var("FERROFTP_S3_LIST_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Writes `count` one-byte objects `/many/o000000`... through the backend.
fn fill(g: &Garage, prefix: &str, count: usize) {
    let options = S3Options {
        endpoint: Some(g.endpoint.clone()),
        region: g.region.clone(),
        bucket: g.bucket.clone(),
        prefix: prefix.to_string(),
        access_key_id: Some(g.access_key_id.clone()),
        secret_access_key: Some(g.secret_access_key.clone()),
        allow_http: true,
        ..S3Options::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backend = S3Backend::new(options).expect("S3 backend");
        let storage = backend.user_storage(&FtpPath::root()).await.expect("storage");
        storage
            .mkdir(&FtpPath::root().resolve(b"/many").unwrap())
            .await
            .unwrap();
        let next = Arc::new(AtomicU64::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (storage, next) = (Arc::clone(&storage), Arc::clone(&next));
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= count {
                        return;
                    }
                    let path = FtpPath::root().resolve(format!("/many/o{i:06}").as_bytes()).unwrap();
                    let mut up = storage.open_write(&path, WriteMode::Replace).await.expect("open_write");
                    up.write_all(b"x").await.expect("write");
                    up.commit().await.expect("commit");
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done.expect("a PUT worker panicked");
        }
    });
}

/// Runs a listing command over EPSV, sampling the server's RSS meanwhile;
/// returns the listing's text and the highest RSS seen.
fn list_sampled(c: &mut RawClient, pid: u32, line: &str) -> (String, u64) {
    let mut data = c.epsv();
    let first = c.cmd(line);
    assert!(first.code == 150 || first.code == 125, "{line} -> {first:?}");
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Start reading late, so the server sits mid-listing for a while with
    // its socket buffer full: where a whole-listing buffer would show.
    std::thread::sleep(Duration::from_millis(300));
    let mut text = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = data.read(&mut chunk).expect("listing data");
        if n == 0 {
            break;
        }
        text.extend_from_slice(&chunk[..n]);
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(c.reply().code, 226, "{line}: end of listing");
    (
        String::from_utf8(text).expect("UTF-8 listing"),
        peak.load(Ordering::Relaxed),
    )
}

#[test]
fn s3_list_nlst_mlsd_of_100000_objects_with_flat_memory() {
    let count = object_count();
    let g = Garage::shared();
    let prefix = unique_prefix("many");
    fill(g, &prefix, count);

    let toml = s3_table(g, &prefix);
    let flags = s3_flags(g, &g.endpoint);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = TestServer::start_with_config(&toml, &flags);
    let pid = server.pid();
    let mut c = server.login();
    // The baseline: a session that has listed something small.
    c.expect("MKD /few", 257);
    let (few, _) = list_sampled(&mut c, pid, "LIST /few");
    assert!(few.is_empty(), "{few:?}");
    std::thread::sleep(Duration::from_millis(200));
    let baseline = rss_kib(pid);

    let want = |i: usize| format!("o{i:06}");
    for verb in ["NLST", "MLSD", "LIST"] {
        let (text, peak) = list_sampled(&mut c, pid, &format!("{verb} /many"));
        let names: Vec<&str> = text
            .lines()
            .map(|l| match verb {
                "NLST" => l.rsplit('/').next().unwrap(),
                "MLSD" => l.split_once(' ').expect("MLSD line").1,
                _ => l.split_whitespace().last().expect("LIST line"),
            })
            .collect();
        assert_eq!(names.len(), count, "{verb}: every object, once");
        assert!(
            names.iter().enumerate().all(|(i, n)| *n == want(i)),
            "{verb}: entries in key order"
        );
        if verb == "MLSD" {
            let facts_ok = |l: &str| {
                let l = l.to_ascii_lowercase();
                l.contains("type=file;") && l.contains("size=1;")
            };
            assert!(text.lines().all(facts_ok), "MLSD facts");
        }
        println!("{verb} of {count} objects: server RSS {baseline} KiB before, peak {peak} KiB");
        assert!(
            peak <= baseline + MAX_GROWTH_KIB,
            "{verb}: server RSS grew from {baseline} KiB to {peak} KiB"
        );
    }
    c.expect("QUIT", 221);
}
