//! Rough upload throughput, ignored by default. Run in release mode:
//! `cargo test -p ftp-storage-fs --release --test throughput -- --ignored --nocapture`.
//! Writes 1 GiB to a temporary directory (under $TMPDIR, /tmp by default).

mod common;

use std::io::Write;
use std::time::Instant;

use common::{path, Tree};
use ftp_storage::WriteMode;
use ftp_storage_fs::{Durability, FsOptions};

const TOTAL: usize = 1 << 30;

fn rate(bytes: usize, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!("{:.2} GB/s ({secs:.2} s)", bytes as f64 / secs / 1e9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    let chunk = vec![0x5Au8; 1 << 20];
    // The ceiling: plain blocking writes of the same chunks, no runtime.
    let t = Tree::new().await;
    let target = t.home().join("plain");
    let started = Instant::now();
    let mut file = std::fs::File::create(&target).unwrap();
    for _ in 0..TOTAL / chunk.len() {
        file.write_all(&chunk).unwrap();
    }
    drop(file);
    println!("std::fs::File, 1 MiB chunks: {}", rate(TOTAL, started));
    std::fs::remove_file(&target).unwrap();

    for durability in [Durability::None, Durability::File] {
        for chunk_size in [256 << 10, 1 << 20] {
            let t = Tree::with_options(FsOptions {
                durability,
                ..FsOptions::default()
            })
            .await;
            let chunk = &chunk[..chunk_size];
            let started = Instant::now();
            let mut up = t.storage.open_write(&path("/big"), WriteMode::Replace).await.unwrap();
            for _ in 0..TOTAL / chunk_size {
                up.write_all(chunk).await.unwrap();
            }
            assert_eq!(up.commit().await.unwrap(), TOTAL as u64);
            println!(
                "Upload {durability:?}, {} KiB chunks: {}",
                chunk_size >> 10,
                rate(TOTAL, started)
            );
        }
    }
}
