//! No path, whatever symlinks lie on the disk, reaches outside the user's
//! root; symlinks that stay inside work.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{assert_kind, names, path, read, upload, Tree, REFUSED};
use ftp_storage::{Backend, EntryKind, ErrorKind, WriteMode};

#[tokio::test]
async fn symlink_to_etc_is_refused() {
    let t = Tree::new().await;
    t.symlink("/etc", "etc");
    let s = &*t.storage;
    assert_kind(read(s, "/etc/passwd").await, REFUSED, "read /etc/passwd");
    assert_kind(s.stat(&path("/etc/passwd")).await, REFUSED, "stat /etc/passwd");
    assert_kind(s.stat(&path("/etc")).await, REFUSED, "stat /etc");
    assert_kind(names(s, "/etc").await, REFUSED, "list /etc");
    assert_kind(
        upload(s, "/etc/ferroftp-test", WriteMode::Replace, b"x").await,
        REFUSED,
        "upload into /etc",
    );
    assert_kind(s.mkdir(&path("/etc/ferroftp-test")).await, REFUSED, "mkdir in /etc");
    // The listing shows the link itself.
    let mut stream = s.list(&path("/")).await.unwrap();
    let entry = stream.next_entry().await.unwrap().unwrap();
    assert_eq!((entry.name.as_str(), entry.facts.kind), ("etc", EntryKind::Symlink));
}

#[tokio::test]
async fn dot_dot_symlinks_cannot_climb_out() {
    let t = Tree::new().await;
    std::fs::create_dir(t.home().join("a")).unwrap();
    std::fs::write(t.home().join("a/file"), b"inside").unwrap();
    // `up` at the root points at the backend root, above the user's.
    t.symlink("..", "up");
    // `a/up` points at the user's root: fine once, out on the second step.
    t.symlink("..", "a/up");
    let s = &*t.storage;
    assert_kind(names(s, "/up").await, REFUSED, "list /up");
    assert_kind(s.stat(&path("/up/user/a/file")).await, REFUSED, "stat via /up");
    assert_kind(read(s, "/a/up/up/user/a/file").await, REFUSED, "read via a/up/up");
    assert_kind(names(s, "/a/up/up").await, REFUSED, "list a/up/up");
    // Staying inside through the link works.
    assert_eq!(read(s, "/a/up/a/file").await.unwrap(), b"inside");
    assert_eq!(names(s, "/a/up").await.unwrap(), ["a", "up"]);
}

#[tokio::test]
async fn absolute_symlink_to_the_root_itself_is_refused() {
    let t = Tree::new().await;
    std::fs::write(t.home().join("f"), b"data").unwrap();
    t.symlink(t.home(), "self");
    let s = &*t.storage;
    assert_kind(read(s, "/self/f").await, REFUSED, "read via an absolute link");
    assert_kind(names(s, "/self").await, REFUSED, "list an absolute link");
}

#[tokio::test]
async fn symlink_to_a_file_outside_is_refused_and_never_followed() {
    let t = Tree::new().await;
    let secret = t.outside().join("secret.txt");
    t.symlink(&secret, "secret");
    // Relative this time: `../../outside/secret.txt` from the home.
    t.symlink("../../outside/secret.txt", "secret2");
    let before = std::fs::metadata(&secret).unwrap();
    let s = &*t.storage;
    for link in ["/secret", "/secret2"] {
        assert_kind(read(s, link).await, REFUSED, "read through the link");
        assert_kind(s.stat(&path(link)).await, REFUSED, "stat through the link");
        assert_kind(
            upload(s, link, WriteMode::Append, b"pwned").await,
            REFUSED,
            "append through the link",
        );
        assert_kind(
            upload(s, link, WriteMode::ResumeAt(0), b"pwned").await,
            REFUSED,
            "resume through the link",
        );
        assert_kind(s.chmod(&path(link), 0o777).await, REFUSED, "chmod through the link");
        // These act on the link itself, never on its target.
        s.set_mtime(&path(link), UNIX_EPOCH + Duration::from_secs(1_000))
            .await
            .unwrap();
    }
    // Replace swaps the link for a file; delete removes a link.
    upload(s, "/secret", WriteMode::Replace, b"mine").await.unwrap();
    assert_eq!(read(s, "/secret").await.unwrap(), b"mine");
    s.delete(&path("/secret2")).await.unwrap();

    let after = std::fs::metadata(&secret).unwrap();
    assert_eq!(std::fs::read(&secret).unwrap(), b"secret");
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(after.permissions().mode(), before.permissions().mode());
}

#[tokio::test]
async fn symlinked_directory_outside_is_refused_for_every_operation() {
    let t = Tree::new().await;
    t.symlink(t.outside(), "out");
    std::fs::write(t.home().join("mine"), b"mine").unwrap();
    let s = &*t.storage;
    assert_kind(names(s, "/out").await, REFUSED, "list");
    assert_kind(s.mkdir(&path("/out/d")).await, REFUSED, "mkdir");
    assert_kind(s.delete(&path("/out/secret.txt")).await, REFUSED, "delete");
    assert_kind(s.rmdir(&path("/out/x")).await, REFUSED, "rmdir");
    assert_kind(
        s.rename(&path("/out/secret.txt"), &path("/stolen")).await,
        REFUSED,
        "rename out of it",
    );
    assert_kind(
        s.rename(&path("/mine"), &path("/out/mine")).await,
        REFUSED,
        "rename into it",
    );
    assert_kind(
        upload(s, "/out/new", WriteMode::Replace, b"x").await,
        REFUSED,
        "upload into it",
    );
    assert_kind(
        upload(s, "/out/new", WriteMode::CreateNew, b"x").await,
        REFUSED,
        "create into it",
    );
    assert_kind(
        upload(s, "/out/new", WriteMode::Append, b"x").await,
        REFUSED,
        "append into it",
    );
    assert_kind(
        s.set_mtime(&path("/out/secret.txt"), UNIX_EPOCH).await,
        REFUSED,
        "set_mtime in it",
    );
    let mut outside: Vec<_> = std::fs::read_dir(t.outside())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outside.sort();
    assert_eq!(outside, ["secret.txt"]);
    assert_eq!(std::fs::read(t.outside().join("secret.txt")).unwrap(), b"secret");
    assert!(t.home().join("mine").exists());
}

#[tokio::test]
async fn symlinks_inside_are_followed_for_reads() {
    let t = Tree::new().await;
    std::fs::create_dir(t.home().join("docs")).unwrap();
    std::fs::write(t.home().join("docs/a.txt"), b"hello").unwrap();
    t.symlink("docs/a.txt", "link.txt");
    t.symlink("docs", "docs-link");
    let s = &*t.storage;
    assert_eq!(read(s, "/link.txt").await.unwrap(), b"hello");
    assert_eq!(read(s, "/docs-link/a.txt").await.unwrap(), b"hello");
    let facts = s.stat(&path("/link.txt")).await.unwrap();
    assert_eq!((facts.kind, facts.size), (EntryKind::File, 5));
    assert_eq!(names(s, "/docs-link").await.unwrap(), ["a.txt"]);
    let mut stream = s.list(&path("/")).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(e) = stream.next_entry().await.unwrap() {
        kinds.push((e.name, e.facts.kind));
    }
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("docs".to_string(), EntryKind::Dir),
            ("docs-link".to_string(), EntryKind::Symlink),
            ("link.txt".to_string(), EntryKind::Symlink),
        ]
    );
    // Appending through an inside link writes the target.
    upload(s, "/link.txt", WriteMode::Append, b", world").await.unwrap();
    assert_eq!(std::fs::read(t.home().join("docs/a.txt")).unwrap(), b"hello, world");
}

#[tokio::test]
async fn a_home_behind_an_escaping_symlink_is_refused() {
    let t = Tree::new().await;
    std::os::unix::fs::symlink(t.outside(), t.tmp.path().join("root/evil")).unwrap();
    for home in ["/evil", "/evil/sub"] {
        assert_kind(t.backend.user_storage(&path(home)).await.map(|_| ()), REFUSED, home);
    }
    assert!(!t.outside().join("sub").exists());
    // A nested home is created beneath the root.
    let s = t.backend.user_storage(&path("/a/b/c")).await.unwrap();
    assert!(t.tmp.path().join("root/a/b/c").is_dir());
    assert_eq!(names(&*s, "/").await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn backend_root_must_be_an_existing_directory() {
    let t = Tree::new().await;
    let missing = ftp_storage_fs::FsBackend::new(t.tmp.path().join("missing"), Default::default());
    assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    let file = ftp_storage_fs::FsBackend::new(t.outside().join("secret.txt"), Default::default());
    let err = file.unwrap_err().to_string();
    assert!(err.contains("Not a directory"), "{err}");
}

#[tokio::test]
async fn root_itself_cannot_be_removed_or_renamed() {
    let t = Tree::new().await;
    let s = &*t.storage;
    let denied = &[ErrorKind::PermissionDenied];
    assert_kind(s.rmdir(&path("/")).await, denied, "rmdir /");
    assert_kind(s.delete(&path("/")).await, denied, "delete /");
    assert_kind(s.rename(&path("/"), &path("/x")).await, denied, "rename /");
    assert_kind(
        s.open_write(&path("/"), WriteMode::Replace).await.map(|_| ()),
        denied,
        "upload /",
    );
}
