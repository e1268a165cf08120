//! Garage for tests: `scripts/garage start` on free loopback ports, watched
//! by the script so it stops when this test process ends (even on a
//! panic); [`Garage`] values made by [`Garage::start`] also stop on drop.
//! Shared by the backend's tests and the binary's (`#[path]` include).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct Garage {
    pub dir: String,
    pub endpoint: String,
    pub endpoints: Vec<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    stop_on_drop: bool,
}

/// 16 hex digits no other test process picks: for key prefixes, so tests
/// sharing a bucket never see each other's objects.
pub fn unique() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage")
}

impl Garage {
    /// A cluster of `nodes` nodes (replication factor `nodes`), stopped on
    /// drop.
    pub fn start(nodes: usize) -> Garage {
        let out = Command::new(script())
            .args([
                "start",
                "--nodes",
                &nodes.to_string(),
                "--watch-pid",
                &std::process::id().to_string(),
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/garage");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scripts/garage start failed:\n{text}");
        let vars: HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('\'')))
            .collect();
        let get = |k: &str| {
            vars.get(k)
                .unwrap_or_else(|| panic!("scripts/garage printed no {k}:\n{text}"))
                .to_string()
        };
        Garage {
            dir: get("GARAGE_DIR"),
            endpoint: get("S3_ENDPOINT"),
            endpoints: get("S3_ENDPOINTS").split_whitespace().map(str::to_string).collect(),
            region: get("S3_REGION"),
            bucket: get("S3_BUCKET"),
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            stop_on_drop: true,
        }
    }

    /// One single-node Garage for the whole test process (stopped when the
    /// process ends).
    pub fn shared() -> &'static Garage {
        static SHARED: OnceLock<Garage> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut g = Garage::start(1);
            g.stop_on_drop = false;
            g
        })
    }

    /// Stops node `i` (1-based).
    pub fn stop_node(&self, i: usize) {
        let status = Command::new(script())
            .args(["stop-node", &self.dir, &i.to_string()])
            .status()
            .expect("run scripts/garage stop-node");
        assert!(status.success(), "scripts/garage stop-node failed");
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = Command::new(script()).args(["stop", &self.dir]).status();
        }
    }
}

impl Garage {
    /// The garage CLI's answer (stdout) for `args`, against node 1.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(script())
            .arg("cli")
            .arg(&self.dir)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/garage cli");
        assert!(out.status.success(), "garage {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Multipart uploads started and neither completed nor aborted, in the
    /// bucket.
    pub fn unfinished_multipart_uploads(&self) -> u64 {
        let info = self.cli(&[
            "json-api",
            "GetBucketInfo",
            &format!("{{\"globalAlias\":\"{}\"}}", self.bucket),
        ]);
        let line = info
            .lines()
            .find(|l| l.contains("\"unfinishedMultipartUploads\""))
            .unwrap_or_else(|| panic!("no unfinishedMultipartUploads in {info}"));
        line.split(':')
            .nth(1)
            .unwrap()
            .trim()
            .trim_end_matches(',')
            .parse()
            .unwrap()
    }
}
