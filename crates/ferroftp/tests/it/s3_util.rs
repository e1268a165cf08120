//! Helpers for the `s3_*` modules: Garage started by the tests (the helper
//! the S3 backend's own tests use, with `scripts/garage` behind it) and
//! `ferroftp serve --storage s3` on it, each server on a prefix of its
//! own so tests sharing a node never see each other's files.

#![allow(dead_code)]

#[path = "../../../ftp-storage-s3/tests/support/garage.rs"]
pub mod garage;

pub use garage::Garage;

use std::time::Duration;

use crate::common::TestServer;

/// A prefix no other test uses.
pub fn unique_prefix(tag: &str) -> String {
    format!("{tag}-{}", garage::unique())
}

/// The `[s3]` table for `g` with what has no flag: credentials, the
/// prefix, and parts of the smallest size S3 takes (5 MiB), so a few MiB
/// already go multipart.
pub fn s3_table(g: &Garage, prefix: &str) -> String {
    format!(
        "[s3]\nprefix = \"{prefix}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\npart_size = 5242880\n",
        g.access_key_id, g.secret_access_key
    )
}

/// `--storage s3 --s3-endpoint URL --s3-bucket NAME --s3-region REGION`.
pub fn s3_flags(g: &Garage, endpoint: &str) -> Vec<String> {
    [
        "--storage",
        "s3",
        "--s3-endpoint",
        endpoint,
        "--s3-bucket",
        &g.bucket,
        "--s3-region",
        &g.region,
    ]
    .map(str::to_string)
    .to_vec()
}

/// `ferroftp serve --storage s3 ...` over `g` (its first node) on a fresh
/// prefix; `s3_keys` are more lines of the `[s3]` table, `extra` other
/// tables.
pub fn s3_server(g: &Garage, s3_keys: &str, extra: &str) -> TestServer {
    let toml = format!("{}{s3_keys}\n{extra}", s3_table(g, &unique_prefix("ftp")));
    let flags = s3_flags(g, &g.endpoint);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestServer::start_with_config(&toml, &flags)
}

/// Waits (up to 30 s) until nothing accepts connections at `endpoint`
/// (`http://127.0.0.1:PORT`): `stop-node` only signals the node, which
/// then shuts down in its own time.
pub fn wait_until_down(endpoint: &str) {
    let addr: std::net::SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("endpoint http://IP:PORT");
    for _ in 0..300 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{endpoint} still answers");
}
