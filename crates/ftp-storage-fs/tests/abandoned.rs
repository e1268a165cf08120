//! Hidden upload files that no upload owns (a server died mid-upload):
//! removed by a listing of their directory or an RMD of it once unchanged
//! for `abandoned_upload_age` and unlocked; an upload in progress, however
//! old its file looks, and a file another process holds are left alone.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{names, path, Tree};
use ftp_storage::WriteMode;
use ftp_storage_fs::FsOptions;

const TEMP_PREFIX: &str = ".ferroftp-upload.";
const AGE: Duration = Duration::from_secs(600);

/// A hidden upload file as a dead server leaves it, last written `ago`.
fn leftover(dir: &Path, hex: &str, ago: Duration) -> String {
    let name = format!("{TEMP_PREFIX}{hex}");
    std::fs::write(dir.join(&name), vec![7u8; 10_000]).unwrap();
    backdate(&dir.join(&name), ago);
    name
}

fn backdate(p: &Path, ago: Duration) {
    // Setting a time needs ownership, not write access: a directory works too.
    let file = File::open(p).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

/// Another process's lock on `p`, as its upload in progress holds it; held
/// until the returned file is dropped.
fn locked_elsewhere(p: &Path) -> File {
    let file = File::open(p).unwrap();
    // SAFETY: plain flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(locked, 0, "lock {p:?}");
    file
}

fn with_age(age: Option<Duration>) -> FsOptions {
    FsOptions {
        abandoned_upload_age: age,
        ..FsOptions::default()
    }
}

#[tokio::test]
async fn a_listing_removes_abandoned_uploads_and_nothing_else() {
    let t = Tree::with_options(with_age(Some(AGE))).await;
    let home = t.home();
    std::fs::write(home.join("kept.txt"), b"a file").unwrap();
    let stale = leftover(&home, "00000000000000a1", AGE + Duration::from_secs(5));
    let fresh = leftover(&home, "00000000000000a2", Duration::from_secs(30));
    let held = leftover(&home, "00000000000000a3", AGE * 2);
    let _lock = locked_elsewhere(&home.join(&held));
    // Hidden names that are not regular files are never touched.
    let dir_like = format!("{TEMP_PREFIX}00000000000000a4");
    std::fs::create_dir(home.join(&dir_like)).unwrap();
    backdate(&home.join(&dir_like), AGE * 2);
    let link_like = format!("{TEMP_PREFIX}00000000000000a5");
    std::os::unix::fs::symlink("kept.txt", home.join(&link_like)).unwrap();

    assert_eq!(names(&*t.storage, "/").await.unwrap(), ["kept.txt"]);
    let mut want = vec!["kept.txt".to_string(), fresh, held, dir_like, link_like];
    want.sort();
    assert_eq!(t.on_disk(""), want, "only {stale} is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_progress_is_never_swept_however_old_its_file_looks() {
    let t = Tree::with_options(with_age(Some(Duration::from_secs(1)))).await;
    let mut up = t.storage.open_write(&path("/f"), WriteMode::Replace).await.unwrap();
    up.write_all(&[1; 100_000]).await.unwrap();
    let temps: Vec<String> = t
        .on_disk("")
        .into_iter()
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect();
    assert_eq!(temps.len(), 1, "{:?}", t.on_disk(""));
    backdate(&t.home().join(&temps[0]), Duration::from_secs(3600));
    std::fs::create_dir(t.home().join("d")).unwrap();

    assert_eq!(names(&*t.storage, "/").await.unwrap(), ["d"]);
    assert_eq!(t.on_disk("").len(), 2, "the upload's file is still there");
    up.write_all(&[2; 100_000]).await.unwrap();
    assert_eq!(up.commit().await.unwrap(), 200_000);
    let got = std::fs::read(t.home().join("f")).unwrap();
    assert!(got[..100_000].iter().all(|&b| b == 1) && got[100_000..].iter().all(|&b| b == 2));
    assert_eq!(t.on_disk(""), ["d", "f"]);
}

#[tokio::test]
async fn rmdir_removes_a_directory_that_holds_only_abandoned_uploads() {
    let t = Tree::with_options(with_age(Some(AGE))).await;
    let s = &*t.storage;
    let home = t.home();
    for d in ["gone", "busy", "full"] {
        std::fs::create_dir(home.join(d)).unwrap();
        leftover(&home.join(d), "00000000000000b1", AGE * 2);
        leftover(&home.join(d), "00000000000000b2", AGE * 3);
    }
    let held = leftover(&home.join("busy"), "00000000000000b3", AGE * 2);
    let _lock = locked_elsewhere(&home.join("busy").join(&held));
    std::fs::write(home.join("full/visible"), b"x").unwrap();

    s.rmdir(&path("/gone")).await.expect("only abandoned uploads in it");
    assert!(!home.join("gone").exists());
    assert!(s.rmdir(&path("/busy")).await.is_err(), "an upload in progress");
    assert_eq!(t.on_disk("busy"), [held], "the abandoned ones went, the held one stays");
    assert!(s.rmdir(&path("/full")).await.is_err(), "a file in it");
    assert!(home.join("full/visible").exists());
}

#[tokio::test]
async fn with_no_age_nothing_is_swept() {
    let t = Tree::with_options(with_age(None)).await;
    let home = t.home();
    let stale = leftover(&home, "00000000000000c1", Duration::from_secs(86_400));
    std::fs::create_dir(home.join("d")).unwrap();
    let inside = leftover(&home.join("d"), "00000000000000c2", Duration::from_secs(86_400));
    assert_eq!(names(&*t.storage, "/").await.unwrap(), ["d"]);
    assert!(t.storage.rmdir(&path("/d")).await.is_err());
    assert_eq!(t.on_disk(""), [stale, "d".to_string()]);
    assert_eq!(t.on_disk("d"), [inside]);
}

#[test]
fn the_default_age_is_ten_minutes() {
    assert_eq!(FsOptions::default().abandoned_upload_age, Some(AGE));
}

#[tokio::test]
async fn a_listing_checks_a_bounded_number_and_the_next_listing_goes_on() {
    let options = FsOptions {
        abandoned_upload_checks_per_listing: 2,
        ..with_age(Some(AGE))
    };
    let t = Tree::with_options(options).await;
    let home = t.home();
    std::fs::write(home.join("kept.txt"), b"a file").unwrap();
    for i in 0..5 {
        leftover(&home, &format!("00000000000000d{i}"), AGE * 2);
    }
    let hidden = |t: &Tree| t.on_disk("").into_iter().filter(|n| n.starts_with(TEMP_PREFIX)).count();
    for left in [3, 1, 0] {
        assert_eq!(names(&*t.storage, "/").await.unwrap(), ["kept.txt"]);
        assert_eq!(hidden(&t), left, "two checks per listing");
    }
    // Young files (uploads in progress) do not use up the tries: with one
    // try per listing, the one old file goes at the first, wherever it is
    // in the directory's order. (With young files counted, the old one
    // would stay unless it came first of 101.)
    std::fs::create_dir(home.join("young")).unwrap();
    for i in 0..100 {
        leftover(
            &home.join("young"),
            &format!("000000000000b{i:03}"),
            Duration::from_secs(5),
        );
    }
    let old = leftover(&home.join("young"), "00000000000000bf", AGE * 2);
    let one_try = FsOptions {
        abandoned_upload_checks_per_listing: 1,
        ..with_age(Some(AGE))
    };
    let t1 = Tree::with_options(one_try).await;
    std::fs::rename(home.join("young"), t1.home().join("young")).unwrap();
    assert!(names(&*t1.storage, "/young").await.unwrap().is_empty());
    assert_eq!(t1.on_disk("young").len(), 100, "{old} went, the young stay");
    // RMD is not bounded: a directory whose every name is a leftover goes.
    std::fs::create_dir(home.join("d")).unwrap();
    for i in 0..5 {
        leftover(&home.join("d"), &format!("00000000000000e{i}"), AGE * 2);
    }
    t.storage.rmdir(&path("/d")).await.expect("all five checked");
    assert!(!home.join("d").exists());
}

/// `chattr +i` on a file until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: std::path::PathBuf) -> Immutable {
        let set = std::process::Command::new("chattr").arg("+i").arg(&path).status();
        assert!(
            set.is_ok_and(|s| s.success()),
            "chattr +i {path:?} (root, e2fsprogs, ext4)"
        );
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn a_tree_sweep_removes_leftovers_in_every_directory_and_nothing_else() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("a/b/c")).unwrap();
    std::fs::create_dir_all(r.join("z")).unwrap();
    std::fs::write(r.join("a/b/file.txt"), b"stays").unwrap();
    let deep = leftover(&r.join("a/b/c"), "00000000000000f1", AGE * 2);
    let top = leftover(r, "00000000000000f2", AGE * 2);
    let fresh = leftover(&r.join("a"), "00000000000000f3", Duration::from_secs(30));
    let held = leftover(&r.join("z"), "00000000000000f4", AGE * 2);
    let _lock = locked_elsewhere(&r.join("z").join(&held));
    // A symlink to a directory outside is not followed: its leftover stays.
    let outside = tempfile::tempdir().unwrap();
    let beyond = leftover(outside.path(), "00000000000000f5", AGE * 2);
    std::os::unix::fs::symlink(outside.path(), r.join("a/out")).unwrap();

    // One that cannot be removed (immutable) is a failure, with its path.
    // Needs root and a filesystem with the flag (ext4, as the test
    // machines' /tmp); the flag is cleared however the test ends.
    let stuck = leftover(&r.join("z"), "00000000000000f6", AGE * 2);
    let immutable = Immutable::set(r.join("z").join(&stuck));

    let report = ftp_storage_fs::sweep_tree(r, AGE).unwrap();
    drop(immutable);
    assert_eq!(report.directories, 5, "the root, a, a/b, a/b/c and z: {report:?}");
    assert_eq!((report.removed, report.removed_bytes), (2, 20_000), "{report:?}");
    assert_eq!(report.kept, 2, "the fresh and the held one: {report:?}");
    assert_eq!(report.failures, 1, "{report:?}");
    assert_eq!(report.first_failures[0].0, r.join("z").join(&stuck));
    assert!(!r.join("a/b/c").join(deep).exists() && !r.join(top).exists());
    assert!(r.join("a").join(fresh).exists() && r.join("z").join(held).exists());
    assert!(outside.path().join(beyond).exists());
    assert_eq!(std::fs::read(r.join("a/b/file.txt")).unwrap(), b"stays");
    assert!(ftp_storage_fs::sweep_tree(&r.join("missing"), AGE).is_err());
}
