//! The storage conformance suite, run against the local-disk backend with
//! its default options.

use ftp_storage_fs::{FsBackend, FsOptions};

#[tokio::test]
async fn conformance() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = FsBackend::new(dir.path(), FsOptions::default()).expect("backend");
    ftp_storage::conformance::run_all(&backend).await;
}

/// The same on a multi-threaded runtime, where upload chunks really are
/// written while the next one is being prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_multi_thread() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = FsBackend::new(dir.path(), FsOptions::default()).expect("backend");
    ftp_storage::conformance::run_all(&backend).await;
}
