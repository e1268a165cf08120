//! The S3 backend against a real Garage node that the tests start
//! (`scripts/garage`, installed with cargo where missing): the storage
//! conformance suite, then what only an object store shows (multipart
//! uploads, pages of listings, directory markers written by other tools,
//! conditional puts, an unreachable store).

#[path = "support/garage.rs"]
mod garage;

use std::time::Duration;

use ftp_storage::{Backend, EntryKind, ErrorKind, FtpPath, Storage, WriteMode};
use ftp_storage_s3::{S3Backend, S3Options, MIN_PART_SIZE};
use garage::{unique, Garage};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use tokio::io::AsyncReadExt;

fn options(g: &Garage, prefix: &str) -> S3Options {
    S3Options {
        endpoint: Some(g.endpoint.clone()),
        region: g.region.clone(),
        bucket: g.bucket.clone(),
        prefix: prefix.to_string(),
        access_key_id: Some(g.access_key_id.clone()),
        secret_access_key: Some(g.secret_access_key.clone()),
        allow_http: true,
        // The smallest parts, so multi-MiB uploads of the suite go multipart.
        part_size: MIN_PART_SIZE,
        ..S3Options::default()
    }
}

/// A raw object_store client on the same bucket, to look behind the
/// backend (markers, keys written by other tools).
fn raw(g: &Garage) -> impl ObjectStore {
    AmazonS3Builder::new()
        .with_endpoint(&g.endpoint)
        .with_region(&g.region)
        .with_bucket_name(&g.bucket)
        .with_access_key_id(&g.access_key_id)
        .with_secret_access_key(&g.secret_access_key)
        .with_allow_http(true)
        .build()
        .unwrap()
}

fn p(s: &str) -> FtpPath {
    FtpPath::root().resolve(s.as_bytes()).unwrap()
}

async fn storage(g: &Garage) -> (String, std::sync::Arc<dyn Storage>) {
    let prefix = format!("t-{}", unique());
    let backend = S3Backend::new(options(g, &prefix)).unwrap();
    let s = backend.user_storage(&p("/home")).await.unwrap();
    (format!("{prefix}/home"), s)
}

async fn read_all(s: &dyn Storage, path: &FtpPath, offset: u64) -> Vec<u8> {
    let mut r = s.open_read(path, offset).await.unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let g = Garage::shared();
    let backend = S3Backend::new(options(g, &format!("conf-{}", unique()))).unwrap();
    let started = std::time::Instant::now();
    ftp_storage::conformance::run_all(&backend).await;
    eprintln!("conformance suite against Garage: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_declared() {
    let g = Garage::shared();
    let (_, s) = storage(g).await;
    let c = s.capabilities();
    assert!(!c.append && !c.rename_directories && !c.set_mtime && !c.chmod && !c.unix_modes);
    let f = p("/f");
    let mut up = s.open_write(&f, WriteMode::Replace).await.unwrap();
    up.write_all(b"x").await.unwrap();
    up.commit().await.unwrap();
    for mode in [WriteMode::Append, WriteMode::ResumeAt(1)] {
        let e = s.open_write(&f, mode).await.err().expect("append refused");
        assert_eq!(e.kind, ErrorKind::Unsupported);
    }
    assert_eq!(
        s.set_mtime(&f, std::time::SystemTime::now()).await.unwrap_err().kind,
        ErrorKind::Unsupported
    );
    assert_eq!(s.chmod(&f, 0o600).await.unwrap_err().kind, ErrorKind::Unsupported);
    s.mkdir(&p("/d")).await.unwrap();
    assert_eq!(
        s.rename(&p("/d"), &p("/e")).await.unwrap_err().kind,
        ErrorKind::Unsupported
    );
}

/// 12 MiB in odd chunks: three parts of 5 MiB + the rest; read back whole
/// and from offsets inside later parts; invisible until commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_round_trip() {
    let g = Garage::shared();
    let (_, s) = storage(g).await;
    let f = p("/big.bin");
    let data = payload(12 * 1024 * 1024 + 333, 7);
    let mut up = s.open_write(&f, WriteMode::Replace).await.unwrap();
    for chunk in data.chunks(1_000_003) {
        up.write_all(chunk).await.unwrap();
    }
    assert_eq!(
        s.stat(&f).await.unwrap_err().kind,
        ErrorKind::NotFound,
        "visible before commit"
    );
    assert_eq!(up.commit().await.unwrap(), data.len() as u64);
    let facts = s.stat(&f).await.unwrap();
    assert_eq!((facts.kind, facts.size), (EntryKind::File, data.len() as u64));
    assert!(facts.modified.is_some());
    assert!(read_all(&*s, &f, 0).await == data);
    let off = 11 * 1024 * 1024 + 5;
    assert!(read_all(&*s, &f, off).await == data[off as usize..]);
}

/// An aborted or dropped multipart upload leaves no object and no
/// unfinished upload in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_abort_and_drop_leave_nothing() {
    let g = Garage::start(1); // its own node: the upload counter is per bucket
    let (_, s) = storage(&g).await;
    let data = payload(11 * 1024 * 1024, 3);
    for (name, abort) in [("/aborted", true), ("/dropped", false)] {
        let f = p(name);
        let mut up = s.open_write(&f, WriteMode::Replace).await.unwrap();
        up.write_all(&data).await.unwrap();
        // The counter this test relies on does see the upload.
        wait_for_unfinished(&g, |n| n >= 1).await;
        if abort {
            up.abort().await.unwrap();
        } else {
            drop(up);
        }
        assert_eq!(s.stat(&f).await.unwrap_err().kind, ErrorKind::NotFound, "{name}");
    }
    wait_for_unfinished(&g, |n| n == 0).await;
}

/// Waits (up to 10 s) until the bucket's count of unfinished multipart
/// uploads satisfies `ok`.
async fn wait_for_unfinished(g: &Garage, ok: impl Fn(u64) -> bool) {
    let mut n = 0;
    for _ in 0..100 {
        n = g.unfinished_multipart_uploads();
        if ok(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("unfinished multipart uploads in the store: {n}");
}

/// 2,345 entries: three pages, in key order, none twice; deeper keys fold
/// into their directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages() {
    let g = Garage::shared();
    let (base, s) = storage(g).await;
    let store = raw(g);
    // Written straight to the bucket (no markers), many at once.
    let mut keys: Vec<String> = (0..2300).map(|i| format!("{base}/big/f{i:05}")).collect();
    for i in 0..40 {
        keys.push(format!("{base}/big/sub{i:02}/deep/x"));
    }
    for i in 0..5 {
        keys.push(format!("{base}/big/f{i:05}/inner"));
    }
    let mut set = tokio::task::JoinSet::new();
    let store = std::sync::Arc::new(store);
    for chunk in keys.chunks(100) {
        let chunk = chunk.to_vec();
        let store = std::sync::Arc::clone(&store);
        set.spawn(async move {
            for k in chunk {
                store
                    .put(&Path::parse(&k).unwrap(), PutPayload::from_static(b"ab"))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let mut stream = s.list(&p("/big")).await.unwrap();
    let mut names = Vec::new();
    let mut dirs = 0;
    while let Some(e) = stream.next_entry().await.unwrap() {
        if e.facts.kind == EntryKind::Dir {
            dirs += 1;
        } else {
            assert_eq!(e.facts.size, 2);
        }
        names.push(e.name);
    }
    // f00000..f00004 are files *and* prefixes (written around the
    // backend): both show, the way other S3 tools show them.
    assert_eq!(dirs, 45);
    assert_eq!(names.len(), 2300 + 45);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries not in key order");
    assert_eq!(s.stat(&p("/big/sub07")).await.unwrap().kind, EntryKind::Dir);
    assert_eq!(s.stat(&p("/big/sub07/deep/x")).await.unwrap().size, 2);
}

/// Directories: markers written by MKD, directories that only have
/// objects below them, markers written by other tools, and the parent
/// staying when its last file goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_markers() {
    let g = Garage::shared();
    let (base, s) = storage(g).await;
    let store = raw(g);
    s.mkdir(&p("/made")).await.unwrap();
    let marker = store
        .head(&Path::parse(format!("{base}/made")).unwrap().child(""))
        .await
        .unwrap();
    assert_eq!(marker.size, 0, "MKD writes a zero-byte marker");
    assert_eq!(marker.location.as_ref(), format!("{base}/made/"));

    // A directory with no marker, only an object below it.
    store
        .put(
            &Path::parse(format!("{base}/implicit/a.txt")).unwrap(),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap();
    assert_eq!(s.stat(&p("/implicit")).await.unwrap().kind, EntryKind::Dir);
    assert_eq!(
        s.rmdir(&p("/implicit")).await.unwrap_err().kind,
        ErrorKind::DirectoryNotEmpty
    );
    s.delete(&p("/implicit/a.txt")).await.unwrap();
    assert_eq!(
        s.stat(&p("/implicit")).await.unwrap().kind,
        EntryKind::Dir,
        "the directory went with its last file"
    );
    s.rmdir(&p("/implicit")).await.unwrap();
    assert_eq!(s.stat(&p("/implicit")).await.unwrap_err().kind, ErrorKind::NotFound);

    // Uploads into a missing directory or over a directory.
    let e = s.open_write(&p("/missing/f"), WriteMode::Replace).await.err().unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound);
    let e = s.open_write(&p("/made"), WriteMode::Replace).await.err().unwrap();
    assert_eq!(e.kind, ErrorKind::IsADirectory);
    let root = s.list(&FtpPath::root()).await.unwrap();
    drop(root);
}

/// Names with characters object_store would otherwise percent-encode keep
/// their bytes as keys, and list back as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_round_trip() {
    let g = Garage::shared();
    let (base, s) = storage(g).await;
    let store = raw(g);
    let names = ["50%.txt", "a b", "x#y?z", "é ü", "[1]{2}", "a+b=c&d", "quote\"s"];
    for name in names {
        let f = FtpPath::root().join(name);
        let mut up = s.open_write(&f, WriteMode::Replace).await.unwrap();
        up.write_all(name.as_bytes()).await.unwrap();
        up.commit().await.unwrap();
        store
            .head(&Path::parse(format!("{base}/{name}")).unwrap())
            .await
            .unwrap();
        assert_eq!(read_all(&*s, &f, 0).await, name.as_bytes());
    }
    let mut stream = s.list(&FtpPath::root()).await.unwrap();
    let mut listed = Vec::new();
    while let Some(e) = stream.next_entry().await.unwrap() {
        listed.push(e.name);
    }
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
}

/// CreateNew refuses a name that appeared after the upload opened
/// (written by another node: this one would answer Busy), small (one PUT)
/// or large (multipart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_new_refuses_a_racing_writer() {
    let g = Garage::shared();
    let (base, s) = storage(g).await;
    let store = raw(g);
    for (name, len) in [("stou-small", 4), ("stou-large", MIN_PART_SIZE + 10)] {
        let f = FtpPath::root().join(name);
        let mut mine = s.open_write(&f, WriteMode::CreateNew).await.unwrap();
        mine.write_all(&payload(len, 1)).await.unwrap();
        store
            .put(
                &Path::parse(format!("{base}/{name}")).unwrap(),
                PutPayload::from_static(b"theirs"),
            )
            .await
            .unwrap();
        let e = mine.commit().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
        assert_eq!(read_all(&*s, &f, 0).await, b"theirs");
    }
}
/// A store that does not answer: 450-class errors, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_temporarily_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend = S3Backend::new(S3Options {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "garage".into(),
        bucket: "none".into(),
        access_key_id: Some("GK0000".into()),
        secret_access_key: Some("0000".into()),
        allow_http: true,
        max_retries: 1,
        retry_timeout: Duration::from_secs(2),
        ..S3Options::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let e = backend.user_storage(&p("/u")).await.err().expect("no store there");
    assert_eq!(e.kind, ErrorKind::TemporarilyUnavailable, "{e}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn credentials_are_required() {
    let e = S3Backend::new(S3Options {
        bucket: "b".into(),
        access_key_id: Some("only-the-id".into()),
        ..S3Options::default()
    });
    if std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none() {
        assert!(e.is_err());
    }
    assert!(S3Backend::new(S3Options::default()).is_err(), "a bucket is required");
}

/// The suite's optional check: a second writer, a delete, a rename or an
/// MKD of a file being uploaded hear Busy, also through an overlapping
/// home.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_uploads() {
    let g = Garage::shared();
    let backend = S3Backend::new(options(g, &format!("excl-{}", unique()))).unwrap();
    ftp_storage::conformance::exclusive_uploads(&backend).await;
}
