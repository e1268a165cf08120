//! The storage conformance suite, run against the local-disk backend with
//! its default options, plus the optional checks this backend offers
//! (exclusive uploads across overlapping homes, in-place discard).

use ftp_storage::conformance;
use ftp_storage_fs::{FsBackend, FsOptions};

#[tokio::test]
async fn conformance() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = FsBackend::new(dir.path(), FsOptions::default()).expect("backend");
    conformance::run_all(&backend).await;
    conformance::exclusive_uploads(&backend).await;
    conformance::discard_in_place(&*conformance::fresh_storage(&backend).await).await;
}

/// The same on a multi-threaded runtime, where upload chunks really are
/// written while the next one is being prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_multi_thread() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = FsBackend::new(dir.path(), FsOptions::default()).expect("backend");
    conformance::run_all(&backend).await;
    conformance::exclusive_uploads(&backend).await;
    conformance::discard_in_place(&*conformance::fresh_storage(&backend).await).await;
}

/// Keeping partial uploads changes abort, never discard.
#[tokio::test]
async fn conformance_keeping_partial_uploads() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = FsOptions {
        keep_partial_uploads: true,
        ..FsOptions::default()
    };
    let backend = FsBackend::new(dir.path(), options).expect("backend");
    let s = conformance::fresh_storage(&backend).await;
    conformance::discard_leaves_nothing(&*s).await;
    conformance::discard_in_place(&*s).await;
    conformance::exclusive_uploads(&backend).await;
}
