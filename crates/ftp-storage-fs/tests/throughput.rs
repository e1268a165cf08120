//! Rough upload throughput, ignored by default. Run in release mode:
//! `cargo test -p ftp-storage-fs --release --test throughput -- --ignored --nocapture --test-threads 1`.
//! Each case writes 1 GiB to a temporary directory (under $TMPDIR, /tmp by
//! default). The multi-thread cases take the `block_in_place` path of
//! uploads, the current-thread ones the copying, pipelined one.

mod common;

use std::io::Write;
use std::time::Instant;

use common::{path, Tree};
use ftp_storage::WriteMode;
use ftp_storage_fs::{Durability, FsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOTAL: usize = 1 << 30;

fn report(what: &str, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!("{what}: {:.2} GB/s ({secs:.2} s)", TOTAL as f64 / secs / 1e9);
}

async fn tree(durability: Durability) -> Tree {
    Tree::with_options(FsOptions {
        durability,
        ..FsOptions::default()
    })
    .await
}

/// Uploads 1 GiB in chunks of each size straight from memory.
async fn from_memory(runtime: &str) {
    let block = vec![0x5Au8; 1 << 20];
    for durability in [Durability::None, Durability::File] {
        for chunk_size in [256 << 10, 1 << 20] {
            let t = tree(durability).await;
            let chunk = &block[..chunk_size];
            let started = Instant::now();
            let mut up = t.storage.open_write(&path("/big"), WriteMode::Replace).await.unwrap();
            for _ in 0..TOTAL / chunk_size {
                up.write_all(chunk).await.unwrap();
            }
            assert_eq!(up.commit().await.unwrap(), TOTAL as u64);
            report(
                &format!("{runtime}, memory, {durability:?}, {} KiB chunks", chunk_size >> 10),
                started,
            );
        }
    }
}

/// Closer to the server: the bytes come from a loopback TCP connection,
/// read into a buffer of one chunk and handed to the upload, so receiving
/// and writing compete for the cores as they would in a transfer.
async fn from_socket(runtime: &str) {
    for chunk_size in [256 << 10, 1 << 20] {
        let t = tree(Durability::None).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            let block = vec![0xA5u8; 1 << 20];
            for _ in 0..TOTAL / block.len() {
                conn.write_all(&block).await.unwrap();
            }
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        let started = Instant::now();
        let mut up = t.storage.open_write(&path("/big"), WriteMode::Replace).await.unwrap();
        let mut buf = vec![0u8; chunk_size];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = conn.read(&mut buf[filled..]).await.unwrap();
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            up.write_all(&buf[..filled]).await.unwrap();
        }
        assert_eq!(up.commit().await.unwrap(), TOTAL as u64);
        report(
            &format!("{runtime}, socket, None, {} KiB chunks", chunk_size >> 10),
            started,
        );
        sender.await.unwrap();
    }
}

/// The ceiling: plain blocking writes of 1 MiB chunks, no runtime involved.
#[test]
#[ignore]
fn throughput_plain_std() {
    let dir = tempfile::tempdir().unwrap();
    let block = vec![0x5Au8; 1 << 20];
    let started = Instant::now();
    let mut file = std::fs::File::create(dir.path().join("plain")).unwrap();
    for _ in 0..TOTAL / block.len() {
        file.write_all(&block).unwrap();
    }
    drop(file);
    report("std::fs::File, 1024 KiB chunks", started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_multi_thread() {
    from_memory("multi-thread").await;
    from_socket("multi-thread").await;
}

#[tokio::test(flavor = "current_thread")]
#[ignore]
async fn throughput_current_thread() {
    from_memory("current-thread").await;
    from_socket("current-thread").await;
}
