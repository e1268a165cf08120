//! The behaviour every storage backend must show, as one suite each
//! backend runs in its own tests:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     ftp_storage::conformance::run_all(&my_backend).await;
//! }
//! ```
//!
//! Only the public interface is used. Each check works in its own directory
//! of a fresh user storage (under a unique home), panics with a message
//! naming the check and what differed, and skips what the backend's
//! [`Capabilities`](crate::Capabilities) say it cannot do. The checks are public too, so a
//! backend can run one alone while debugging.
//!
//! The suite needs a tokio runtime with the time driver (`#[tokio::test]`
//! has one).
//!
//! Two checks are not part of [`run_all`], for what not every backend
//! offers: [`exclusive_uploads`] (a backend that refuses a second writer of
//! a file with `Busy`, across users with overlapping homes) and
//! [`discard_in_place`] (a backend that writes `Append`/`ResumeAt` in place
//! and can undo them). A backend that offers them runs them besides
//! `run_all`.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;

use crate::{Backend, EntryKind, ErrorKind, FtpPath, Result, Storage, WriteMode};

/// Runs every check against a fresh user storage of `backend`.
pub async fn run_all(backend: &dyn Backend) {
    let storage = fresh_storage(backend).await;
    let s = &*storage;
    root_is_a_directory(s).await;
    directories(s).await;
    delete_files(s).await;
    read_at_offsets(s).await;
    replace_round_trip(s).await;
    replace_invisible_until_commit(s).await;
    abort_leaves_nothing(s).await;
    drop_leaves_nothing(s).await;
    discard_leaves_nothing(s).await;
    create_new(s).await;
    rename(s).await;
    set_mtime(s).await;
    chmod(s).await;
    append_and_resume(s).await;
    list_errors(s).await;
    large_directory(s).await;
}

/// A storage under a home no other run uses (`/conformance-<random>`).
pub async fn fresh_storage(backend: &dyn Backend) -> Arc<dyn Storage> {
    let home = path(&format!("/conformance-{:016x}", unique()));
    backend
        .user_storage(&home)
        .await
        .unwrap_or_else(|e| panic!("[user_storage] opening a storage at {home}: {e}"))
}

/// A number no other call in this process returns, and unlikely in another
/// one (the hasher's keys are random per process).
fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}

// ---------------------------------------------------------------- helpers

fn path(s: &str) -> FtpPath {
    FtpPath::root()
        .resolve(s.as_bytes())
        .unwrap_or_else(|e| panic!("test path {s:?}: {e}"))
}

/// Unwraps `r`, or panics naming the check and the step.
fn ok<T>(check: &str, step: &str, r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("[{check}] {step}: unexpected error {e}"))
}

/// Asserts that `r` failed with `kind`.
fn fails<T>(check: &str, step: &str, r: Result<T>, kind: ErrorKind) {
    match r {
        Ok(_) => panic!("[{check}] {step}: succeeded, expected {kind:?}"),
        Err(e) => assert_eq!(e.kind, kind, "[{check}] {step}: wrong error kind ({e})"),
    }
}

/// Deterministic bytes that differ from one offset to the next (so a
/// misplaced chunk shows), seeded so two payloads differ.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Uploads `data` in chunks cycling through `chunks` and commits.
async fn upload_chunked(s: &dyn Storage, p: &FtpPath, mode: WriteMode, data: &[u8], chunks: &[usize]) -> Result<u64> {
    let mut up = s.open_write(p, mode).await?;
    let mut rest = data;
    for size in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        up.write_all(chunk).await?;
        rest = tail;
    }
    up.commit().await
}

async fn upload(s: &dyn Storage, p: &FtpPath, mode: WriteMode, data: &[u8]) -> Result<u64> {
    upload_chunked(s, p, mode, data, &[64 * 1024]).await
}

/// Uploads and checks the commit's byte count.
async fn put(check: &str, s: &dyn Storage, p: &FtpPath, data: &[u8]) {
    let n = ok(
        check,
        &format!("upload {p}"),
        upload(s, p, WriteMode::Replace, data).await,
    );
    assert_eq!(
        n,
        data.len() as u64,
        "[{check}] commit of {p} returned a wrong byte count"
    );
}

async fn read_at(s: &dyn Storage, p: &FtpPath, offset: u64) -> Result<Vec<u8>> {
    let mut file = s.open_read(p, offset).await?;
    let mut out = Vec::new();
    file.read_to_end(&mut out).await?;
    Ok(out)
}

async fn read(check: &str, s: &dyn Storage, p: &FtpPath) -> Vec<u8> {
    ok(check, &format!("read {p}"), read_at(s, p, 0).await)
}

/// The listing of `dir`: name -> (kind, size). Read with both of
/// DirStream's calls in turn (the server uses `next_entries`, other
/// callers `next_entry`), so a backend's two must agree.
async fn listing(s: &dyn Storage, dir: &FtpPath) -> Result<BTreeMap<String, (EntryKind, u64)>> {
    let mut stream = s.list(dir).await?;
    let mut out = BTreeMap::new();
    let mut batch = Vec::new();
    for call in 0usize.. {
        if call % 2 == 0 {
            batch.extend(stream.next_entry().await?);
        } else {
            stream.next_entries(&mut batch).await?;
        }
        if batch.is_empty() {
            break;
        }
        for entry in batch.drain(..) {
            let name = entry.name.clone();
            if out.insert(entry.name, (entry.facts.kind, entry.facts.size)).is_some() {
                panic!("listing of {dir} returned {name:?} twice");
            }
        }
    }
    Ok(out)
}

async fn list(check: &str, s: &dyn Storage, dir: &FtpPath) -> BTreeMap<String, (EntryKind, u64)> {
    ok(check, &format!("list {dir}"), listing(s, dir).await)
}

async fn names(check: &str, s: &dyn Storage, dir: &FtpPath) -> Vec<String> {
    list(check, s, dir).await.into_keys().collect()
}

async fn mkdir(check: &str, s: &dyn Storage, p: &FtpPath) {
    ok(check, &format!("mkdir {p}"), s.mkdir(p).await);
}

fn file(size: usize) -> (EntryKind, u64) {
    (EntryKind::File, size as u64)
}

// ----------------------------------------------------------------- checks

pub async fn root_is_a_directory(s: &dyn Storage) {
    let facts = ok("root", "stat /", s.stat(&FtpPath::root()).await);
    assert_eq!(facts.kind, EntryKind::Dir, "[root] / is not a directory");
}

/// mkdir, stat, nested directories, listing names, kinds and sizes, rmdir.
pub async fn directories(s: &dyn Storage) {
    const C: &str = "directories";
    let base = path("/dirs");
    mkdir(C, s, &base).await;
    let a = base.join("a");
    let b = a.join("b");
    mkdir(C, s, &a).await;
    mkdir(C, s, &b).await;
    for p in [&base, &a, &b] {
        let facts = ok(C, &format!("stat {p}"), s.stat(p).await);
        assert_eq!(facts.kind, EntryKind::Dir, "[{C}] stat {p}: not a directory");
    }
    fails(
        C,
        "mkdir of an existing directory",
        s.mkdir(&a).await,
        ErrorKind::AlreadyExists,
    );
    fails(
        C,
        "mkdir in a missing parent",
        s.mkdir(&base.join("missing").join("x")).await,
        ErrorKind::NotFound,
    );
    put(C, s, &a.join("f.txt"), b"abc").await;
    fails(
        C,
        "mkdir over a file",
        s.mkdir(&a.join("f.txt")).await,
        ErrorKind::AlreadyExists,
    );
    let facts = ok(C, "stat a file", s.stat(&a.join("f.txt")).await);
    assert_eq!((facts.kind, facts.size), file(3), "[{C}] stat of a 3-byte file");

    let top = list(C, s, &base).await;
    assert_eq!(top.keys().collect::<Vec<_>>(), ["a"], "[{C}] listing of {base}");
    assert_eq!(top["a"].0, EntryKind::Dir, "[{C}] kind of a directory in a listing");
    let inner = list(C, s, &a).await;
    assert_eq!(inner.keys().collect::<Vec<_>>(), ["b", "f.txt"], "[{C}] listing of {a}");
    assert_eq!(inner["b"].0, EntryKind::Dir, "[{C}] kind of {b} in a listing");
    assert_eq!(inner["f.txt"], file(3), "[{C}] kind and size of a file in a listing");
    assert!(
        list(C, s, &b).await.is_empty(),
        "[{C}] an empty directory lists entries"
    );

    fails(
        C,
        "rmdir of a non-empty directory",
        s.rmdir(&a).await,
        ErrorKind::DirectoryNotEmpty,
    );
    fails(
        C,
        "rmdir of a file",
        s.rmdir(&a.join("f.txt")).await,
        ErrorKind::NotADirectory,
    );
    fails(
        C,
        "rmdir of a missing directory",
        s.rmdir(&a.join("nope")).await,
        ErrorKind::NotFound,
    );
    ok(C, "rmdir of an empty directory", s.rmdir(&b).await);
    fails(C, "stat of a removed directory", s.stat(&b).await, ErrorKind::NotFound);
    assert_eq!(names(C, s, &a).await, ["f.txt"], "[{C}] listing after rmdir");
}

/// delete: files go, a missing name is NotFound, a directory IsADirectory.
pub async fn delete_files(s: &dyn Storage) {
    const C: &str = "delete";
    let base = path("/delete");
    mkdir(C, s, &base).await;
    let f = base.join("f");
    put(C, s, &f, b"data").await;
    mkdir(C, s, &base.join("d")).await;
    ok(C, "delete a file", s.delete(&f).await);
    fails(C, "stat of a deleted file", s.stat(&f).await, ErrorKind::NotFound);
    fails(
        C,
        "read of a deleted file",
        read_at(s, &f, 0).await,
        ErrorKind::NotFound,
    );
    fails(C, "delete of a missing file", s.delete(&f).await, ErrorKind::NotFound);
    fails(
        C,
        "delete of a directory",
        s.delete(&base.join("d")).await,
        ErrorKind::IsADirectory,
    );
    assert_eq!(names(C, s, &base).await, ["d"], "[{C}] listing after delete");
}

/// open_read from the start, the middle and the end; errors.
pub async fn read_at_offsets(s: &dyn Storage) {
    const C: &str = "read offsets";
    let base = path("/read");
    mkdir(C, s, &base).await;
    let f = base.join("f.bin");
    let data = payload(10_000, 1);
    put(C, s, &f, &data).await;
    for offset in [0, 1, 4321, 9_999, 10_000] {
        let got = ok(C, &format!("read at {offset}"), read_at(s, &f, offset).await);
        assert!(
            got == data[offset as usize..],
            "[{C}] content read from offset {offset}"
        );
    }
    // Past the end: refused, or (for backends that cannot tell) empty.
    match read_at(s, &f, 10_001).await {
        Ok(got) => assert!(got.is_empty(), "[{C}] read past the end returned data"),
        Err(e) => assert_eq!(e.kind, ErrorKind::InvalidOffset, "[{C}] read past the end: {e}"),
    }
    fails(
        C,
        "read of a directory",
        read_at(s, &base, 0).await,
        ErrorKind::IsADirectory,
    );
    fails(
        C,
        "read of a missing file",
        read_at(s, &base.join("missing"), 0).await,
        ErrorKind::NotFound,
    );
}

/// Replace uploads in uneven chunks read back exactly, and a shorter or
/// empty upload truncates.
pub async fn replace_round_trip(s: &dyn Storage) {
    const C: &str = "replace round trip";
    let base = path("/replace");
    mkdir(C, s, &base).await;
    let f = base.join("big.bin");
    let big = payload(5 * 1024 * 1024 + 12_345, 2);
    let chunks = [1, 4096, 65_537, 262_151, 1_048_579, 7];
    let n = ok(
        C,
        "multi-MiB upload",
        upload_chunked(s, &f, WriteMode::Replace, &big, &chunks).await,
    );
    assert_eq!(n, big.len() as u64, "[{C}] commit byte count of the big upload");
    let facts = ok(C, "stat after upload", s.stat(&f).await);
    assert_eq!((facts.kind, facts.size), file(big.len()), "[{C}] stat of the big file");
    assert!(read(C, s, &f).await == big, "[{C}] big file read back differs");

    let small = payload(1000, 3);
    put(C, s, &f, &small).await;
    assert!(
        read(C, s, &f).await == small,
        "[{C}] a shorter replace did not truncate"
    );
    put(C, s, &f, b"").await;
    assert_eq!(ok(C, "stat empty", s.stat(&f).await).size, 0, "[{C}] empty replace");
    assert!(read(C, s, &f).await.is_empty(), "[{C}] empty file has content");
    assert_eq!(names(C, s, &base).await, ["big.bin"], "[{C}] listing after uploads");
}

/// Nothing of a Replace is visible before commit: a new name does not exist,
/// an existing one keeps its old content.
pub async fn replace_invisible_until_commit(s: &dyn Storage) {
    const C: &str = "replace invisible until commit";
    let base = path("/invisible");
    mkdir(C, s, &base).await;
    let new = base.join("new");
    let mut up = ok(C, "open new", s.open_write(&new, WriteMode::Replace).await);
    ok(C, "write new", up.write_all(&payload(200_000, 4)).await);
    fails(C, "stat before commit", s.stat(&new).await, ErrorKind::NotFound);
    assert!(
        list(C, s, &base).await.is_empty(),
        "[{C}] an upload in progress shows in the listing"
    );
    ok(C, "commit new", up.commit().await);
    assert_eq!(names(C, s, &base).await, ["new"], "[{C}] listing after commit");

    let old = payload(3000, 5);
    let newer = payload(5000, 6);
    let f = base.join("existing");
    put(C, s, &f, &old).await;
    let mut up = ok(C, "open existing", s.open_write(&f, WriteMode::Replace).await);
    ok(C, "write existing", up.write_all(&newer).await);
    assert!(read(C, s, &f).await == old, "[{C}] old content changed before commit");
    assert_eq!(
        ok(C, "stat old", s.stat(&f).await).size,
        3000,
        "[{C}] size before commit"
    );
    ok(C, "commit existing", up.commit().await);
    assert!(read(C, s, &f).await == newer, "[{C}] new content after commit");
}

/// abort discards a Replace: the listing is as before, old content stays.
pub async fn abort_leaves_nothing(s: &dyn Storage) {
    const C: &str = "abort";
    let base = path("/abort");
    mkdir(C, s, &base).await;
    let keep = base.join("keep");
    put(C, s, &keep, b"old").await;
    let before = list(C, s, &base).await;

    let gone = base.join("gone");
    let mut up = ok(C, "open", s.open_write(&gone, WriteMode::Replace).await);
    ok(C, "write", up.write_all(&payload(300_000, 7)).await);
    ok(C, "abort", up.abort().await);
    fails(C, "stat after abort", s.stat(&gone).await, ErrorKind::NotFound);
    assert_eq!(list(C, s, &base).await, before, "[{C}] listing changed by an abort");

    let mut up = ok(C, "open over existing", s.open_write(&keep, WriteMode::Replace).await);
    ok(C, "write over existing", up.write_all(b"new content").await);
    ok(C, "abort over existing", up.abort().await);
    assert_eq!(read(C, s, &keep).await, b"old", "[{C}] abort changed the old file");
    assert_eq!(list(C, s, &base).await, before, "[{C}] listing changed by an abort");
}

/// Dropping an upload without commit or abort aborts it (the clean-up may
/// finish shortly after the drop).
pub async fn drop_leaves_nothing(s: &dyn Storage) {
    const C: &str = "drop";
    let base = path("/drop");
    mkdir(C, s, &base).await;
    let f = base.join("dropped");
    let mut up = ok(C, "open", s.open_write(&f, WriteMode::Replace).await);
    ok(C, "write", up.write_all(&payload(100_000, 8)).await);
    drop(up);
    fails(C, "stat after drop", s.stat(&f).await, ErrorKind::NotFound);
    for _ in 0..100 {
        if list(C, s, &base).await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("[{C}] a dropped upload left {:?}", names(C, s, &base).await);
}

/// discard of a Replace leaves nothing and the old content, like abort.
pub async fn discard_leaves_nothing(s: &dyn Storage) {
    const C: &str = "discard";
    let base = path("/discard");
    mkdir(C, s, &base).await;
    let keep = base.join("keep");
    put(C, s, &keep, b"old").await;
    let mut up = ok(C, "open new", s.open_write(&base.join("new"), WriteMode::Replace).await);
    ok(C, "write new", up.write_all(&payload(70_000, 10)).await);
    ok(C, "discard new", up.discard().await);
    let mut up = ok(C, "open over existing", s.open_write(&keep, WriteMode::Replace).await);
    ok(C, "write over existing", up.write_all(b"new content").await);
    ok(C, "discard over existing", up.discard().await);
    assert_eq!(read(C, s, &keep).await, b"old", "[{C}] discard changed the old file");
    assert_eq!(names(C, s, &base).await, ["keep"], "[{C}] listing after discards");
}

/// CreateNew makes a new file and refuses an existing name (when opening or
/// at commit), leaving the existing file alone.
pub async fn create_new(s: &dyn Storage) {
    const C: &str = "create new";
    let base = path("/create-new");
    mkdir(C, s, &base).await;
    let f = base.join("unique");
    let n = ok(
        C,
        "create a new name",
        upload(s, &f, WriteMode::CreateNew, b"first").await,
    );
    assert_eq!(n, 5, "[{C}] commit byte count");
    assert_eq!(read(C, s, &f).await, b"first", "[{C}] content of a created file");
    fails(
        C,
        "create over an existing name",
        upload(s, &f, WriteMode::CreateNew, b"second").await,
        ErrorKind::AlreadyExists,
    );
    assert_eq!(read(C, s, &f).await, b"first", "[{C}] existing file changed");
    assert_eq!(names(C, s, &base).await, ["unique"], "[{C}] listing");
}

/// rename of files (and of directories, with their contents, when capable).
pub async fn rename(s: &dyn Storage) {
    const C: &str = "rename";
    let base = path("/rename");
    mkdir(C, s, &base).await;
    let (from, to) = (base.join("from"), base.join("to"));
    put(C, s, &from, b"moving").await;
    ok(C, "rename a file", s.rename(&from, &to).await);
    fails(C, "stat of the old name", s.stat(&from).await, ErrorKind::NotFound);
    assert_eq!(read(C, s, &to).await, b"moving", "[{C}] content after rename");
    fails(
        C,
        "rename of a missing file",
        s.rename(&from, &base.join("x")).await,
        ErrorKind::NotFound,
    );
    mkdir(C, s, &base.join("sub")).await;
    let moved = base.join("sub").join("moved");
    ok(C, "rename into a subdirectory", s.rename(&to, &moved).await);
    assert_eq!(read(C, s, &moved).await, b"moving", "[{C}] content after a move");

    if s.capabilities().rename_directories {
        let renamed = base.join("renamed");
        ok(C, "rename a directory", s.rename(&base.join("sub"), &renamed).await);
        fails(
            C,
            "stat of the old directory",
            s.stat(&base.join("sub")).await,
            ErrorKind::NotFound,
        );
        assert_eq!(
            read(C, s, &renamed.join("moved")).await,
            b"moving",
            "[{C}] a file in a renamed directory"
        );
        assert_eq!(names(C, s, &base).await, ["renamed"], "[{C}] listing");
    }
}

/// set_mtime shows in stat and listings (when capable).
pub async fn set_mtime(s: &dyn Storage) {
    const C: &str = "set mtime";
    if !s.capabilities().set_mtime {
        return;
    }
    let base = path("/mtime");
    mkdir(C, s, &base).await;
    let f = base.join("f");
    put(C, s, &f, b"x").await;
    // 2001-02-03 04:05:06 UTC.
    let when = UNIX_EPOCH + Duration::from_secs(981_173_106);
    ok(C, "set_mtime", s.set_mtime(&f, when).await);
    let seconds = |t: Option<SystemTime>| t.and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let facts = ok(C, "stat", s.stat(&f).await);
    assert_eq!(
        seconds(facts.modified).map(|d| d.as_secs()),
        Some(981_173_106),
        "[{C}] stat shows another time"
    );
    let mut stream = ok(C, "list", s.list(&base).await);
    let entry = ok(C, "list entry", stream.next_entry().await);
    let entry = entry.unwrap_or_else(|| panic!("[{C}] empty listing"));
    assert_eq!(
        seconds(entry.facts.modified).map(|d| d.as_secs()),
        Some(981_173_106),
        "[{C}] the listing shows another time"
    );
    fails(
        C,
        "set_mtime of a missing file",
        s.set_mtime(&base.join("missing"), when).await,
        ErrorKind::NotFound,
    );
}

/// chmod shows in stat (when capable and the backend has Unix modes).
pub async fn chmod(s: &dyn Storage) {
    const C: &str = "chmod";
    let caps = s.capabilities();
    if !(caps.chmod && caps.unix_modes) {
        return;
    }
    let base = path("/chmod");
    mkdir(C, s, &base).await;
    let f = base.join("f");
    put(C, s, &f, b"x").await;
    ok(C, "chmod 600", s.chmod(&f, 0o600).await);
    let mode = ok(C, "stat", s.stat(&f).await).mode;
    assert_eq!(mode.map(|m| m & 0o777), Some(0o600), "[{C}] mode after chmod");
    fails(
        C,
        "chmod of a missing file",
        s.chmod(&base.join("missing"), 0o600).await,
        ErrorKind::NotFound,
    );
}

/// Append creates and extends; ResumeAt keeps a prefix, writes from there
/// and drops the rest; beyond the end is InvalidOffset (when capable).
pub async fn append_and_resume(s: &dyn Storage) {
    const C: &str = "append and resume";
    if !s.capabilities().append {
        return;
    }
    let base = path("/append");
    mkdir(C, s, &base).await;
    let f = base.join("log");
    let n = ok(
        C,
        "append to a missing file",
        upload(s, &f, WriteMode::Append, b"one,").await,
    );
    assert_eq!(n, 4, "[{C}] commit byte count of the first append");
    let n = ok(C, "append again", upload(s, &f, WriteMode::Append, b"two").await);
    assert_eq!(n, 3, "[{C}] commit byte count counts only this upload");
    assert_eq!(read(C, s, &f).await, b"one,two", "[{C}] content after appends");

    // An aborted in-place upload keeps what reached the file.
    let mut up = ok(C, "open append", s.open_write(&f, WriteMode::Append).await);
    ok(C, "write append", up.write_all(b",three").await);
    ok(C, "abort append", up.abort().await);
    assert_eq!(read(C, s, &f).await, b"one,two,three", "[{C}] aborted append lost data");

    let r = base.join("resume");
    put(C, s, &r, b"0123456789").await;
    let n = ok(C, "resume at 4", upload(s, &r, WriteMode::ResumeAt(4), b"ab").await);
    assert_eq!(n, 2, "[{C}] commit byte count of a resume");
    assert_eq!(
        read(C, s, &r).await,
        b"0123ab",
        "[{C}] resume keeps a prefix, drops the rest"
    );
    let n = ok(
        C,
        "resume at the end",
        upload(s, &r, WriteMode::ResumeAt(6), b"XYZ").await,
    );
    assert_eq!(n, 3, "[{C}] commit byte count of a resume at the end");
    assert_eq!(read(C, s, &r).await, b"0123abXYZ", "[{C}] resume at the end");
    let big = payload(3 * 1024 * 1024 + 17, 9);
    let n = ok(
        C,
        "resume with a big tail",
        upload_chunked(s, &r, WriteMode::ResumeAt(9), &big, &[100_003, 1 << 20]).await,
    );
    assert_eq!(n, big.len() as u64, "[{C}] commit byte count of a big resume");
    let got = read(C, s, &r).await;
    assert!(
        got[..9] == *b"0123abXYZ" && got[9..] == big[..],
        "[{C}] content after a big resume"
    );
    fails(
        C,
        "resume beyond the end",
        upload(s, &r, WriteMode::ResumeAt(got.len() as u64 + 1), b"x").await,
        ErrorKind::InvalidOffset,
    );
    assert_eq!(
        ok(C, "stat after refused resume", s.stat(&r).await).size,
        got.len() as u64,
        "[{C}] a refused resume changed the file"
    );
}

/// Listing something that is not a directory.
pub async fn list_errors(s: &dyn Storage) {
    const C: &str = "list errors";
    let base = path("/list-errors");
    mkdir(C, s, &base).await;
    let f = base.join("f");
    put(C, s, &f, b"x").await;
    fails(C, "list of a file", listing(s, &f).await, ErrorKind::NotADirectory);
    fails(
        C,
        "list of a missing directory",
        listing(s, &base.join("missing")).await,
        ErrorKind::NotFound,
    );
}

/// A directory of 2,000 entries is listed completely through the stream.
pub async fn large_directory(s: &dyn Storage) {
    const C: &str = "large directory";
    const FILES: usize = 1500;
    const DIRS: usize = 500;
    let base = path("/large");
    mkdir(C, s, &base).await;
    for i in 0..FILES {
        let name = format!("file-{i:05}");
        let size = i % 7;
        put(C, s, &base.join(&name), &payload(size, i as u64)).await;
    }
    for i in 0..DIRS {
        mkdir(C, s, &base.join(&format!("dir-{i:05}"))).await;
    }
    let entries = list(C, s, &base).await;
    assert_eq!(entries.len(), FILES + DIRS, "[{C}] number of entries listed");
    for i in 0..FILES {
        let name = format!("file-{i:05}");
        assert_eq!(entries.get(&name), Some(&file(i % 7)), "[{C}] entry {name}");
    }
    for i in 0..DIRS {
        let name = format!("dir-{i:05}");
        let kind = entries.get(&name).map(|e| e.0);
        assert_eq!(kind, Some(EntryKind::Dir), "[{C}] entry {name}");
    }
}

// ------------------------------------------------------- optional checks

/// Uploads are exclusive per target, across users: while one upload of a
/// file runs, a second `open_write` of it (any mode), `delete`, `rename`
/// from or to it, `mkdir` of its name and `check_not_busy` fail with
/// `Busy`, also through a storage whose home overlaps (here a home one
/// level up); reading it is allowed and shows the old content. Commit,
/// abort, discard and drop each free the target.
pub async fn exclusive_uploads(backend: &dyn Backend) {
    const C: &str = "exclusive uploads";
    let top = path(&format!("/conformance-{:016x}", unique()));
    let outer = ok(C, "outer storage", backend.user_storage(&top).await);
    let inner_home = top.join("inner");
    let inner = ok(C, "inner storage", backend.user_storage(&inner_home).await);
    let (o, i) = (&*outer, &*inner);
    let f_inner = path("/f");
    let f_outer = path("/inner/f");
    put(C, i, &f_inner, b"old").await;

    let busy = ErrorKind::Busy;
    let mut up = ok(C, "open", i.open_write(&f_inner, WriteMode::Replace).await);
    ok(C, "write", up.write_all(&payload(50_000, 11)).await);
    for (who, s, p) in [("same storage", i, &f_inner), ("overlapping home", o, &f_outer)] {
        for mode in [
            WriteMode::Replace,
            WriteMode::CreateNew,
            WriteMode::Append,
            WriteMode::ResumeAt(1),
        ] {
            fails(
                C,
                &format!("{who}: second {mode:?}"),
                s.open_write(p, mode).await.map(drop),
                busy,
            );
        }
        fails(C, &format!("{who}: delete"), s.delete(p).await, busy);
        fails(C, &format!("{who}: check_not_busy"), s.check_not_busy(p).await, busy);
        fails(
            C,
            &format!("{who}: rename from"),
            s.rename(p, &p.parent().join("g")).await,
            busy,
        );
        put(C, s, &p.parent().join("h"), b"h").await;
        fails(
            C,
            &format!("{who}: rename onto"),
            s.rename(&p.parent().join("h"), p).await,
            busy,
        );
        ok(C, "delete h", s.delete(&p.parent().join("h")).await);
        assert_eq!(read(C, s, p).await, b"old", "[{C}] {who}: a reader sees the old file");
    }
    ok(C, "another name is free", i.check_not_busy(&path("/other")).await);
    // A resumed upload was refused before it could cut the file.
    assert_eq!(
        read(C, i, &f_inner).await,
        b"old",
        "[{C}] a refused resume changed the file"
    );
    ok(C, "commit", up.commit().await);
    ok(C, "free after commit", o.check_not_busy(&f_outer).await);

    type Finish = fn(Box<dyn crate::Upload>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;
    let finishes: [(&str, Finish); 3] = [
        ("abort", |u| Box::pin(u.abort())),
        ("discard", |u| Box::pin(u.discard())),
        ("drop", |u| {
            drop(u);
            Box::pin(async { Ok(()) })
        }),
    ];
    for (how, finish) in finishes {
        // An in-place upload where the backend has them (object stores
        // have none: a Replace holds the target just the same).
        let mode = if o.capabilities().append {
            WriteMode::Append
        } else {
            WriteMode::Replace
        };
        let mut up = ok(C, &format!("open before {how}"), o.open_write(&f_outer, mode).await);
        ok(C, &format!("write before {how}"), up.write_all(b"x").await);
        fails(
            C,
            &format!("busy before {how}"),
            i.open_write(&f_inner, WriteMode::Replace).await.map(drop),
            busy,
        );
        ok(C, how, finish(up).await);
        // A dropped upload may free its target shortly after the drop.
        let mut freed = false;
        for _ in 0..100 {
            if i.check_not_busy(&f_inner).await.is_ok() {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(freed, "[{C}] the target stays busy after {how}");
    }
    put(C, i, &f_inner, b"new").await;
    assert_eq!(read(C, o, &f_outer).await, b"new", "[{C}] upload after the others");
}

/// `discard` of an in-place upload cuts the file back to its length at
/// the start (`Append`), or at the resume offset (`ResumeAt`), and removes
/// a file the upload created.
pub async fn discard_in_place(s: &dyn Storage) {
    const C: &str = "discard in place";
    if !s.capabilities().append {
        return;
    }
    let base = path("/discard-in-place");
    mkdir(C, s, &base).await;
    let f = base.join("f");
    put(C, s, &f, b"0123456789").await;
    let mut up = ok(C, "open append", s.open_write(&f, WriteMode::Append).await);
    ok(C, "write append", up.write_all(&payload(100_000, 12)).await);
    ok(C, "discard append", up.discard().await);
    assert_eq!(read(C, s, &f).await, b"0123456789", "[{C}] after a discarded append");
    let mut up = ok(C, "open resume", s.open_write(&f, WriteMode::ResumeAt(4)).await);
    ok(C, "write resume", up.write_all(&payload(100_000, 13)).await);
    ok(C, "discard resume", up.discard().await);
    assert_eq!(read(C, s, &f).await, b"0123", "[{C}] after a discarded resume");
    let created = base.join("created");
    let mut up = ok(C, "open new append", s.open_write(&created, WriteMode::Append).await);
    ok(C, "write new append", up.write_all(b"abc").await);
    ok(C, "discard new append", up.discard().await);
    fails(
        C,
        "stat of a discarded new file",
        s.stat(&created).await,
        ErrorKind::NotFound,
    );
    assert_eq!(names(C, s, &base).await, ["f"], "[{C}] listing after discards");
}
