//! Uploads and listings as they look on the disk: temporary files, clean-up,
//! atomic replacement, in-place modes, options, and error kinds.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_kind, names, path, read, upload, Tree};
use ftp_storage::{ErrorKind, WriteMode};
use ftp_storage_fs::{Durability, FsOptions};
use tokio::io::AsyncReadExt;

const TEMP_PREFIX: &str = ".ferroftp-upload.";

fn temp_files(t: &Tree, dir: &str) -> Vec<String> {
    t.on_disk(dir)
        .into_iter()
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect()
}

#[tokio::test]
async fn temporary_files_are_hidden_and_cannot_be_named() {
    let t = Tree::new().await;
    let s = &*t.storage;
    let mut up = s.open_write(&path("/f"), WriteMode::Replace).await.unwrap();
    up.write_all(b"partial").await.unwrap();
    let temps = temp_files(&t, "");
    assert_eq!(temps.len(), 1, "the upload writes aside: {:?}", t.on_disk(""));
    assert_eq!(names(s, "/").await.unwrap(), Vec::<String>::new());
    let temp = format!("/{}", temps[0]);
    let reserved = &[ErrorKind::NameNotAllowed];
    assert_kind(s.stat(&path(&temp)).await, reserved, "stat of a temp file");
    assert_kind(read(s, &temp).await, reserved, "read of a temp file");
    assert_kind(s.delete(&path(&temp)).await, reserved, "delete of a temp file");
    assert_kind(
        s.rename(&path(&temp), &path("/stolen")).await,
        reserved,
        "rename of a temp file",
    );
    assert_kind(
        upload(s, &temp, WriteMode::Append, b"x").await,
        reserved,
        "append to a temp file",
    );
    up.commit().await.unwrap();
    assert_eq!(t.on_disk(""), ["f"]);
}

#[tokio::test]
async fn abort_and_drop_leave_nothing_on_disk() {
    let t = Tree::new().await;
    let s = &*t.storage;
    let mut up = s.open_write(&path("/a"), WriteMode::Replace).await.unwrap();
    up.write_all(&[1; 100_000]).await.unwrap();
    up.abort().await.unwrap();
    assert_eq!(t.on_disk(""), Vec::<String>::new());

    let mut up = s.open_write(&path("/b"), WriteMode::CreateNew).await.unwrap();
    up.write_all(&[2; 100_000]).await.unwrap();
    drop(up);
    for _ in 0..100 {
        if t.on_disk("").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(t.on_disk(""), Vec::<String>::new());
}

#[tokio::test]
async fn drop_outside_a_runtime_cleans_up_too() {
    let t = Tree::new().await;
    let mut up = t.storage.open_write(&path("/f"), WriteMode::Replace).await.unwrap();
    up.write_all(b"data").await.unwrap();
    // Dropped on a thread without a runtime: the clean-up runs inline.
    std::thread::spawn(move || drop(up)).join().unwrap();
    assert_eq!(t.on_disk(""), Vec::<String>::new());
}

/// Readers see the old file or the new one, whole, while a Replace of it
/// is written in many chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_partial_replace() {
    let t = Tree::new().await;
    let s = Arc::clone(&t.storage);
    const LEN: usize = 4 << 20;
    upload(&*s, "/f", WriteMode::Replace, &vec![b'o'; LEN]).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, done) = (Arc::clone(&s), Arc::clone(&done));
        tokio::spawn(async move {
            let mut reads = 0;
            let mut saw_new = false;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let data = read(&*s, "/f").await.expect("read during replace");
                assert_eq!(data.len(), LEN, "a reader saw a partial file");
                let first = data[0];
                assert!(data.iter().all(|&b| b == first), "a reader saw a mix of old and new");
                saw_new |= first == b'n';
                reads += 1;
            }
            (reads, saw_new)
        })
    };
    for _ in 0..5 {
        let mut up = s.open_write(&path("/f"), WriteMode::Replace).await.unwrap();
        for _ in 0..LEN / 65_536 {
            up.write_all(&[b'n'; 65_536]).await.unwrap();
            tokio::task::yield_now().await;
        }
        up.commit().await.unwrap();
    }
    done.store(true, Ordering::Release);
    let (reads, _) = reader.await.unwrap();
    assert!(reads > 0);
    assert_eq!(read(&*s, "/f").await.unwrap(), vec![b'n'; LEN]);
}

#[tokio::test]
async fn resume_truncates_then_writes_and_abort_keeps_it() {
    let t = Tree::new().await;
    let s = &*t.storage;
    upload(s, "/f", WriteMode::Replace, b"0123456789").await.unwrap();
    let mut up = s.open_write(&path("/f"), WriteMode::ResumeAt(3)).await.unwrap();
    // Truncated as soon as the upload starts: what follows the offset is
    // dropped even if the transfer breaks.
    assert_eq!(std::fs::read(t.home().join("f")).unwrap(), b"012");
    up.write_all(b"abc").await.unwrap();
    up.abort().await.unwrap();
    assert_eq!(read(s, "/f").await.unwrap(), b"012abc");
    // REST 0 on a missing file is a new file; a missing file has no byte 5.
    upload(s, "/new", WriteMode::ResumeAt(0), b"fresh").await.unwrap();
    assert_eq!(read(s, "/new").await.unwrap(), b"fresh");
    assert_kind(
        upload(s, "/missing", WriteMode::ResumeAt(5), b"x").await,
        &[ErrorKind::InvalidOffset],
        "resume of a missing file",
    );
    assert!(!t.home().join("missing").exists());
}

#[tokio::test]
async fn append_creates_with_the_file_mode() {
    let t = Tree::with_options(FsOptions {
        file_mode: 0o600,
        dir_mode: 0o700,
        ..FsOptions::default()
    })
    .await;
    let s = &*t.storage;
    assert_eq!(upload(s, "/log", WriteMode::Append, b"a").await.unwrap(), 1);
    assert_eq!(upload(s, "/log", WriteMode::Append, b"bc").await.unwrap(), 2);
    assert_eq!(read(s, "/log").await.unwrap(), b"abc");
    upload(s, "/new", WriteMode::Replace, b"x").await.unwrap();
    s.mkdir(&path("/d")).await.unwrap();
    let mode = |p: &str| std::fs::metadata(t.home().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("log"), 0o600);
    assert_eq!(mode("new"), 0o600);
    assert_eq!(mode("d"), 0o700);
}

#[tokio::test]
async fn replace_keeps_the_permissions_of_the_old_file() {
    let t = Tree::new().await;
    let s = &*t.storage;
    upload(s, "/run.sh", WriteMode::Replace, b"#!/bin/sh").await.unwrap();
    s.chmod(&path("/run.sh"), 0o750).await.unwrap();
    upload(s, "/run.sh", WriteMode::Replace, b"#!/bin/sh\necho")
        .await
        .unwrap();
    let facts = s.stat(&path("/run.sh")).await.unwrap();
    assert_eq!(facts.mode, Some(0o750));
}

#[tokio::test]
async fn chmod_keeps_only_permission_bits() {
    let t = Tree::new().await;
    let s = &*t.storage;
    upload(s, "/f", WriteMode::Replace, b"x").await.unwrap();
    s.chmod(&path("/f"), 0o6755).await.unwrap();
    assert_eq!(s.stat(&path("/f")).await.unwrap().mode, Some(0o755));
    s.mkdir(&path("/d")).await.unwrap();
    s.chmod(&path("/d"), 0o1777).await.unwrap();
    assert_eq!(s.stat(&path("/d")).await.unwrap().mode, Some(0o777));
}

/// Two CreateNew of one name: inside the process the second is refused at
/// once (busy); a name created meanwhile by someone else (another process)
/// makes the commit fail rather than replace it.
#[tokio::test]
async fn create_new_race_has_one_winner() {
    let t = Tree::new().await;
    let s = &*t.storage;
    let mut first = s.open_write(&path("/u"), WriteMode::CreateNew).await.unwrap();
    assert_kind(
        s.open_write(&path("/u"), WriteMode::CreateNew).await.map(drop),
        &[ErrorKind::Busy],
        "second open",
    );
    first.write_all(b"first").await.unwrap();
    std::fs::write(t.home().join("u"), b"outsider").unwrap();
    assert_kind(
        first.commit().await,
        &[ErrorKind::AlreadyExists],
        "commit over a new name",
    );
    assert_eq!(read(s, "/u").await.unwrap(), b"outsider");
    assert_eq!(t.on_disk(""), ["u"]);
}

/// Keeping partial uploads applies to abort and drop, never to discard.
#[tokio::test]
async fn discard_ignores_keep_partial_uploads() {
    let t = Tree::with_options(FsOptions {
        keep_partial_uploads: true,
        ..FsOptions::default()
    })
    .await;
    let s = &*t.storage;
    let mut up = s.open_write(&path("/part"), WriteMode::Replace).await.unwrap();
    up.write_all(b"first half").await.unwrap();
    up.discard().await.unwrap();
    assert_eq!(t.on_disk(""), Vec::<String>::new());
}

#[tokio::test]
async fn keep_partial_uploads_publishes_what_arrived() {
    let t = Tree::with_options(FsOptions {
        keep_partial_uploads: true,
        ..FsOptions::default()
    })
    .await;
    let s = &*t.storage;
    let mut up = s.open_write(&path("/part"), WriteMode::Replace).await.unwrap();
    up.write_all(b"first half").await.unwrap();
    up.abort().await.unwrap();
    assert_eq!(read(s, "/part").await.unwrap(), b"first half");
    assert_eq!(t.on_disk(""), ["part"]);
}

#[tokio::test]
async fn every_durability_commits() {
    for durability in [Durability::None, Durability::File, Durability::FileAndDirectory] {
        let t = Tree::with_options(FsOptions {
            durability,
            ..FsOptions::default()
        })
        .await;
        let s = &*t.storage;
        s.mkdir(&path("/d")).await.unwrap();
        for mode in [WriteMode::Replace, WriteMode::Append, WriteMode::ResumeAt(2)] {
            upload(s, "/d/f", mode, b"data").await.unwrap();
        }
        upload(s, "/d/g", WriteMode::CreateNew, b"g").await.unwrap();
        assert_eq!(read(s, "/d/f").await.unwrap(), b"dadata", "{durability:?}");
        assert_eq!(t.on_disk("d"), ["f", "g"], "{durability:?}");
    }
}

#[tokio::test]
async fn error_kinds() {
    let t = Tree::new().await;
    let s = &*t.storage;
    s.mkdir(&path("/d")).await.unwrap();
    upload(s, "/f", WriteMode::Replace, b"x").await.unwrap();
    let is_dir = &[ErrorKind::IsADirectory];
    for mode in [
        WriteMode::Replace,
        WriteMode::CreateNew,
        WriteMode::Append,
        WriteMode::ResumeAt(0),
    ] {
        let r = s.open_write(&path("/d"), mode).await.map(|_| ());
        let expected = if mode == WriteMode::CreateNew {
            &[ErrorKind::IsADirectory, ErrorKind::AlreadyExists][..]
        } else {
            is_dir
        };
        assert_kind(r, expected, &format!("{mode:?} over a directory"));
    }
    assert_kind(read(s, "/d").await, is_dir, "read of a directory");
    assert_kind(s.delete(&path("/d")).await, is_dir, "delete of a directory");
    let not_dir = &[ErrorKind::NotADirectory];
    assert_kind(s.rmdir(&path("/f")).await, not_dir, "rmdir of a file");
    assert_kind(names(s, "/f").await, not_dir, "list of a file");
    assert_kind(s.mkdir(&path("/f/sub")).await, not_dir, "mkdir below a file");
    assert_kind(read(s, "/f/x").await, not_dir, "read below a file");
    assert_kind(
        s.open_read(&path("/f"), 2).await.map(|_| ()),
        &[ErrorKind::InvalidOffset],
        "read beyond the end",
    );
    assert_kind(
        s.rename(&path("/d"), &path("/d/inside")).await,
        &[ErrorKind::NameNotAllowed],
        "rename of a directory into itself",
    );
    // Something that is neither a file nor a directory is not served.
    let fifo = t.home().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    assert_kind(read(s, "/fifo").await, &[ErrorKind::PermissionDenied], "read of a FIFO");
}

#[tokio::test]
async fn listing_facts_and_odd_names() {
    let t = Tree::new().await;
    let s = &*t.storage;
    upload(s, "/f", WriteMode::Replace, b"12345").await.unwrap();
    s.chmod(&path("/f"), 0o640).await.unwrap();
    // Names no FtpPath can express are left out of listings.
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"bad-\xff-utf8");
    std::fs::write(t.home().join(bad), b"").unwrap();
    std::fs::write(t.home().join("line\r\nbreak"), b"").unwrap();
    let mut stream = s.list(&path("/")).await.unwrap();
    let entry = stream.next_entry().await.unwrap().expect("one entry");
    assert_eq!(entry.name, "f");
    assert_eq!(entry.facts.size, 5);
    assert_eq!(entry.facts.mode, Some(0o640));
    assert!(entry.facts.modified.is_some());
    assert!(stream.next_entry().await.unwrap().is_none());
    assert!(stream.next_entry().await.unwrap().is_none(), "the end repeats");
}

/// A directory of 20,000 entries (about 10 batches of 2,048, each read ahead
/// and described by two threads) streams completely: the batching loses and
/// repeats nothing, and every entry carries its own facts.
async fn huge_directory_streams_every_entry_once() {
    let t = Tree::new().await;
    std::fs::create_dir(t.home().join("big")).unwrap();
    for i in 0..20_000usize {
        std::fs::write(t.home().join(format!("big/{i:06}")), vec![b'x'; i % 7]).unwrap();
    }
    let mut stream = t.storage.list(&path("/big")).await.unwrap();
    let mut seen = vec![false; 20_000];
    let mut batch = Vec::new();
    for call in 0usize.. {
        // Both calls, mixed: next_entry must take up where next_entries left.
        if call % 3 == 0 {
            batch.extend(stream.next_entry().await.unwrap());
        } else {
            stream.next_entries(&mut batch).await.unwrap();
        }
        if batch.is_empty() {
            break;
        }
        for e in batch.drain(..) {
            let i: usize = e.name.parse().unwrap();
            assert!(!seen[i], "{} listed twice", e.name);
            assert_eq!(e.facts.size, (i % 7) as u64, "size of {}", e.name);
            seen[i] = true;
        }
    }
    assert!(seen.iter().all(|&s| s));
    assert!(stream.next_entry().await.unwrap().is_none(), "the end repeats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_directory() {
    huge_directory_streams_every_entry_once().await;
}

#[tokio::test(flavor = "current_thread")]
async fn huge_directory_on_one_thread() {
    huge_directory_streams_every_entry_once().await;
}

/// With one blocking thread, the helper that would describe half of each
/// batch can never start beside the thread waiting for it: the listing must
/// still finish (the waiting thread takes the half back).
#[test]
fn huge_directory_with_a_single_blocking_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(60),
            huge_directory_streams_every_entry_once(),
        )
        .await
        .expect("listing finished");
    });
}

/// The server wraps each write in a timeout and a cancel signal, so a
/// `write_all` future may be dropped while it waits for the chunk before.
/// The upload must stay consistent: a cancelled chunk is either wholly
/// written and counted or not at all.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_write_loses_nothing_already_sent() {
    let t = Tree::new().await;
    let s = &*t.storage;
    // A large first chunk, so it is still being written when the second waits.
    let (a, b, c) = (vec![b'a'; 64 << 20], vec![b'b'; 1000], vec![b'c'; 1000]);
    let mut up = s.open_write(&path("/f"), WriteMode::Replace).await.unwrap();
    up.write_all(&a).await.unwrap();
    let cancelled = tokio::time::timeout(Duration::ZERO, up.write_all(&b)).await;
    up.write_all(&c).await.unwrap();
    let n = up.commit().await.unwrap();
    let got = read(s, "/f").await.unwrap();
    let expected = match cancelled {
        Ok(r) => {
            r.unwrap();
            [&a[..], &b, &c].concat()
        }
        Err(_) => [&a[..], &c].concat(),
    };
    assert_eq!(n, expected.len() as u64);
    assert!(got == expected, "content after a cancelled write");
}

/// The busy mark names the directory itself, not a path to it: renaming
/// the directory, or reaching it through a symlink, finds the upload.
#[tokio::test]
async fn busy_follows_the_directory_not_the_path() {
    let t = Tree::new().await;
    let s = &*t.storage;
    s.mkdir(&path("/a")).await.unwrap();
    let mut up = s.open_write(&path("/a/f"), WriteMode::Replace).await.unwrap();
    s.rename(&path("/a"), &path("/b")).await.unwrap();
    std::os::unix::fs::symlink("b", t.home().join("link")).unwrap();
    for p in ["/b/f", "/link/f"] {
        assert_kind(
            s.open_write(&path(p), WriteMode::Replace).await.map(drop),
            &[ErrorKind::Busy],
            &format!("upload of {p}"),
        );
        assert_kind(s.check_not_busy(&path(p)).await, &[ErrorKind::Busy], p);
    }
    up.write_all(b"x").await.unwrap();
    up.commit().await.unwrap();
    assert_eq!(read(s, "/b/f").await.unwrap(), b"x");
    upload(s, "/link/f", WriteMode::Append, b"y").await.unwrap();
    assert_eq!(read(s, "/b/f").await.unwrap(), b"xy");
}

/// Downloads read what the page cache holds on the worker and send the
/// rest to the blocking pool; both paths, and a caller whose buffer
/// shrinks between reads (a disk read may bring more than the next buffer
/// holds), must yield the file's exact bytes from any offset.
async fn read_back_evicted(options: FsOptions) {
    let t = Tree::with_options(options).await;
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let on_disk = t.home().join("cold.bin");
    std::fs::write(&on_disk, &data).unwrap();
    for offset in [0usize, 12_345, 2_999_999, 3_000_000] {
        // Out of the page cache: written back, then dropped.
        let f = std::fs::File::open(&on_disk).unwrap();
        f.sync_all().unwrap();
        // SAFETY: plain advice on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
        let mut file = t.storage.open_read(&path("/cold.bin"), offset as u64).await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        for round in 0usize.. {
            let want = [256 * 1024, 1000, 77 * 1024][round % 3];
            let n = file.read(&mut buf[..want]).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got == data[offset..],
            "bytes from offset {offset} differ ({} read)",
            got.len()
        );
    }
}

#[tokio::test]
async fn downloads_read_cached_and_uncached_data_exactly() {
    read_back_evicted(FsOptions::default()).await;
}

#[tokio::test]
async fn downloads_without_inline_reads_go_through_the_pool() {
    read_back_evicted(FsOptions {
        inline_metadata: false,
        ..FsOptions::default()
    })
    .await;
}

/// The preallocation step of the tests below (the default is 8 MiB).
const STEP: usize = 1 << 20;

fn preallocating(step: usize) -> FsOptions {
    FsOptions {
        upload_preallocation: step as u64,
        keep_partial_uploads: true,
        ..FsOptions::default()
    }
}

/// Bytes of disk a file holds (st_blocks counts 512-byte units; on ext4
/// it includes blocks reserved for data not yet written back).
fn allocated(p: &std::path::Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().blocks() as usize * 512
}

fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The one upload file in the home, while it is being written.
fn the_temp_file(t: &Tree) -> std::path::PathBuf {
    let temps = temp_files(t, "");
    assert_eq!(temps.len(), 1, "{:?}", t.on_disk(""));
    t.home().join(&temps[0])
}

/// What the server's splice path does with a batch it counted: writes it
/// to the upload's descriptor itself, at the file's offset.
fn write_to_descriptor(fd: std::os::fd::RawFd, batch: &[u8]) {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: the upload owns the descriptor; ManuallyDrop never closes it.
    let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    file.write_all(batch).unwrap();
}

/// Waits until a dropped upload's clean-up published it as `name` (its
/// temporary name gone).
async fn wait_until_published(t: &Tree, name: &str) {
    for _ in 0..200 {
        if t.on_disk("").contains(&name.to_string()) && temp_files(t, "").is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} was not published: {:?}", t.on_disk(""));
}

/// Writes `data` in 256 KiB chunks.
async fn write_chunks(up: &mut Box<dyn ftp_storage::Upload>, data: &[u8]) {
    for chunk in data.chunks(256 << 10) {
        up.write_all(chunk).await.unwrap();
    }
}

/// Asserts that a finished file holds no reserved blocks past its end (at
/// most the last partial block and filesystem rounding).
fn assert_trimmed(p: &std::path::Path, len: usize) {
    let held = allocated(p);
    assert!(
        held < len + STEP / 4,
        "{p:?}: {held} bytes allocated for {len} bytes of data"
    );
}

/// Commits `up`, then checks the file `name` in the home: every byte, and
/// no reserved blocks left.
async fn commit_and_check(t: &Tree, up: Box<dyn ftp_storage::Upload>, name: &str, data: &[u8]) {
    assert_eq!(up.commit().await.unwrap(), data.len() as u64);
    assert_eq!(read(&*t.storage, &format!("/{name}")).await.unwrap(), data);
    assert_trimmed(&t.home().join(name), data.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_upload_reserves_space_a_step_ahead_and_gives_back_the_rest() {
    let t = Tree::with_options(preallocating(STEP)).await;
    let s = &*t.storage;
    let data = patterned(3 * STEP + 1000);
    let mut up = s.open_write(&path("/big"), WriteMode::Replace).await.unwrap();

    write_chunks(&mut up, &data[..STEP / 2]).await;
    let temp = the_temp_file(&t);
    let held = allocated(&temp);
    assert!(
        held < STEP,
        "within the first step nothing is reserved: {held} bytes held"
    );

    write_chunks(&mut up, &data[STEP / 2..5 * STEP / 2]).await;
    let held = allocated(&temp);
    assert!(held >= 3 * STEP, "2.5 steps written, 3 reserved: {held} bytes held");
    assert_eq!(
        std::fs::metadata(&temp).unwrap().len(),
        5 * STEP as u64 / 2,
        "the length is what was written"
    );

    write_chunks(&mut up, &data[5 * STEP / 2..]).await;
    commit_and_check(&t, up, "big", &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_batches_reserve_space_too() {
    let t = Tree::with_options(preallocating(STEP)).await;
    let s = &*t.storage;
    let data = patterned(5 * STEP / 2);
    let mut up = s.open_write(&path("/direct"), WriteMode::CreateNew).await.unwrap();
    for batch in data.chunks(STEP / 2) {
        // What the server's splice path does: count the batch, then write
        // it to the descriptor itself.
        up.direct_reserve(batch.len() as u64).unwrap();
        let fd = up.direct_fd().expect("a direct descriptor on the multi-thread runtime");
        write_to_descriptor(fd, batch);
    }
    let held = allocated(&the_temp_file(&t));
    assert!(held >= 3 * STEP, "2.5 steps written, 3 reserved: {held} bytes held");
    commit_and_check(&t, up, "direct", &data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_partial_upload_gives_back_its_reserved_space() {
    let t = Tree::with_options(preallocating(STEP)).await;
    let s = &*t.storage;
    let data = patterned(5 * STEP / 2);

    let mut up = s.open_write(&path("/aborted"), WriteMode::Replace).await.unwrap();
    write_chunks(&mut up, &data).await;
    up.abort().await.unwrap();
    assert_eq!(read(s, "/aborted").await.unwrap(), data);
    assert_trimmed(&t.home().join("aborted"), data.len());

    // A lost connection drops the upload; its clean-up publishes the part.
    let mut up = s.open_write(&path("/dropped"), WriteMode::Replace).await.unwrap();
    write_chunks(&mut up, &data).await;
    drop(up);
    wait_until_published(&t, "dropped").await;
    assert_eq!(read(s, "/dropped").await.unwrap(), data);
    assert_trimmed(&t.home().join("dropped"), data.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preallocation_zero_reserves_nothing_and_in_place_uploads_never_do() {
    let t = Tree::with_options(preallocating(0)).await;
    let s = &*t.storage;
    let data = patterned(5 * STEP / 2);
    let mut up = s.open_write(&path("/plain"), WriteMode::Replace).await.unwrap();
    write_chunks(&mut up, &data).await;
    assert_trimmed(&the_temp_file(&t), data.len());
    up.commit().await.unwrap();

    let t = Tree::with_options(preallocating(STEP)).await;
    let s = &*t.storage;
    let mut up = s.open_write(&path("/appended"), WriteMode::Append).await.unwrap();
    write_chunks(&mut up, &data).await;
    assert_trimmed(&t.home().join("appended"), data.len());
    up.commit().await.unwrap();
    assert_eq!(read(s, "/appended").await.unwrap(), data);
}

/// The direct-I/O threshold of the tests below: off a block boundary, so
/// the switch waits for the next one.
const DIRECT_AFTER: usize = 100_000;

fn direct_after(after: usize) -> FsOptions {
    FsOptions {
        upload_direct_io_after: Some(after as u64),
        keep_partial_uploads: true,
        ..FsOptions::default()
    }
}

/// Whether `file` is open with O_DIRECT in this process (the flags line of
/// /proc/self/fdinfo, octal).
fn open_with_direct_io(file: &std::path::Path) -> bool {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if std::fs::read_link(entry.path()).ok().as_deref() != Some(file) {
            continue;
        }
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", entry.file_name().to_string_lossy()));
        let Ok(info) = info else { continue };
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim();
        return u32::from_str_radix(flags, 8).unwrap() & libc::O_DIRECT as u32 != 0;
    }
    panic!("{file:?} is not open in this process");
}

/// Whether the one upload file in the home is open with O_DIRECT.
fn temp_file_is_direct(t: &Tree) -> bool {
    open_with_direct_io(&the_temp_file(t))
}

/// Writes `data` in pieces of an odd size, so no piece ends on a block.
async fn write_odd_pieces(up: &mut Box<dyn ftp_storage::Upload>, data: &[u8]) {
    for piece in data.chunks(70_001) {
        up.write_all(piece).await.unwrap();
    }
}

async fn a_large_upload_goes_past_the_page_cache() {
    let t = Tree::with_options(FsOptions {
        durability: Durability::File,
        ..direct_after(DIRECT_AFTER)
    })
    .await;
    let s = &*t.storage;
    let data = patterned(3 * (1 << 20) + 777);
    let mut up = s.open_write(&path("/big"), WriteMode::Replace).await.unwrap();
    write_odd_pieces(&mut up, &data[..DIRECT_AFTER / 2]).await;
    assert!(!temp_file_is_direct(&t), "below the threshold the page cache is used");
    write_odd_pieces(&mut up, &data[DIRECT_AFTER / 2..2 << 20]).await;
    assert!(temp_file_is_direct(&t), "past it, O_DIRECT");
    write_odd_pieces(&mut up, &data[2 << 20..]).await;
    assert_eq!(up.commit().await.unwrap(), data.len() as u64);
    assert_eq!(read(s, "/big").await.unwrap(), data);
    assert_eq!(temp_files(&t, ""), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_goes_past_the_page_cache_on_the_servers_runtime() {
    a_large_upload_goes_past_the_page_cache().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_large_upload_goes_past_the_page_cache_on_one_thread() {
    a_large_upload_goes_past_the_page_cache().await;
}

/// What the server does: splice batches while the upload offers its
/// descriptor, then `write_all` once it stops (past the threshold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_hands_over_to_direct_io_past_the_threshold() {
    let t = Tree::with_options(direct_after(DIRECT_AFTER)).await;
    let s = &*t.storage;
    let data = patterned(2 * (1 << 20) + 5);
    let mut up = s.open_write(&path("/handed"), WriteMode::CreateNew).await.unwrap();
    let mut at = 0;
    while let Some(fd) = up.direct_fd() {
        let batch = &data[at..at + 30_000];
        up.direct_reserve(batch.len() as u64).unwrap();
        write_to_descriptor(fd, batch);
        at += batch.len();
    }
    assert_eq!(at, 120_000, "the offer ends with the batch that passed the threshold");
    write_odd_pieces(&mut up, &data[at..]).await;
    assert!(temp_file_is_direct(&t));
    assert_eq!(up.commit().await.unwrap(), data.len() as u64);
    assert_eq!(read(s, "/handed").await.unwrap(), data);
}

/// An aborted or dropped upload kept for resume holds every byte it was
/// given, including those still collected for the next direct write (abort);
/// a drop with a direct write in flight keeps a prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_partial_upload_includes_what_waited_for_a_direct_write() {
    let t = Tree::with_options(direct_after(DIRECT_AFTER)).await;
    let s = &*t.storage;
    let data = patterned(2 * (1 << 20) + 12_345);
    let mut up = s.open_write(&path("/aborted"), WriteMode::Replace).await.unwrap();
    write_odd_pieces(&mut up, &data).await;
    assert!(temp_file_is_direct(&t));
    up.abort().await.unwrap();
    assert_eq!(read(s, "/aborted").await.unwrap(), data);

    let mut up = s.open_write(&path("/dropped"), WriteMode::Replace).await.unwrap();
    write_odd_pieces(&mut up, &data).await;
    drop(up);
    wait_until_published(&t, "dropped").await;
    let kept = read(s, "/dropped").await.unwrap();
    assert!(kept.len() > DIRECT_AFTER, "{} bytes kept", kept.len());
    assert_eq!(kept[..], data[..kept.len()], "a prefix of what was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_io_zero_and_in_place_uploads_stay_buffered() {
    let data = patterned(2 << 20);
    let t = Tree::with_options(direct_after(0)).await;
    let s = &*t.storage;
    let mut up = s.open_write(&path("/buffered"), WriteMode::Replace).await.unwrap();
    write_odd_pieces(&mut up, &data).await;
    assert!(!temp_file_is_direct(&t), "0 turns it off");
    assert!(up.direct_fd().is_some(), "and zero-copy stays on offer");
    up.commit().await.unwrap();

    let t = Tree::with_options(direct_after(DIRECT_AFTER)).await;
    let s = &*t.storage;
    let mut up = s.open_write(&path("/appended"), WriteMode::Append).await.unwrap();
    write_odd_pieces(&mut up, &data).await;
    assert!(up.direct_fd().is_none(), "O_APPEND: no splice");
    assert!(
        !open_with_direct_io(&t.home().join("appended")),
        "appends write through the page cache"
    );
    up.commit().await.unwrap();
    assert_eq!(read(s, "/appended").await.unwrap(), data);
}

/// What the server does past the threshold: read straight into the
/// upload's chunk (`buffer`, then `buffer_filled`), with `write_all` only
/// until the chunk exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_into_the_upload_buffer_store_every_byte() {
    let t = Tree::with_options(direct_after(DIRECT_AFTER)).await;
    let s = &*t.storage;
    let data = patterned(3 * (1 << 20) + 99);
    let mut up = s.open_write(&path("/filled"), WriteMode::Replace).await.unwrap();
    let mut at = 0;
    let mut through_buffer = 0;
    while at < data.len() {
        let piece = (data.len() - at).min(50_001);
        match up.buffer() {
            Some(room) => {
                let n = piece.min(room.len());
                room[..n].copy_from_slice(&data[at..at + n]);
                up.buffer_filled(n).await.unwrap();
                at += n;
                through_buffer += n;
            }
            None => {
                assert!(at < 2 * DIRECT_AFTER, "the buffer is offered once past the threshold");
                up.write_all(&data[at..at + piece]).await.unwrap();
                at += piece;
            }
        }
    }
    assert!(through_buffer > 2 << 20, "{through_buffer} bytes through the buffer");
    assert_eq!(up.commit().await.unwrap(), data.len() as u64);
    assert_eq!(read(s, "/filled").await.unwrap(), data);

    let t = Tree::with_options(direct_after(0)).await;
    let mut up = t.storage.open_write(&path("/plain"), WriteMode::Replace).await.unwrap();
    write_odd_pieces(&mut up, &data).await;
    assert!(up.buffer().is_none(), "no buffer without direct I/O");
    up.commit().await.unwrap();
}
