//! The configuration file re-read on SIGHUP: connections accepted after
//! the reload get the new settings (greeting, denied names, session
//! limits), sessions already open keep the ones they started with, the
//! limits count the sessions opened before the reload, a lowered
//! `max_sessions` waits for sessions to end, a file that does not load
//! changes nothing, and a setting only a restart can change (the
//! storage root) is kept.

use std::time::Duration;

use crate::common::{RawClient, TestServer, PASS, USER};
use crate::safety_util::{eventually, put_any};

/// Rewrites the configuration file in one rename and sends SIGHUP.
fn reload_with(server: &TestServer, toml: &str) {
    let path = server.config_file();
    let next = path.with_extension("next");
    std::fs::write(&next, toml).unwrap();
    std::fs::rename(&next, &path).unwrap();
    server.sighup();
}

/// Waits until a new connection is greeted with `text`, and returns the
/// greeting of the last try.
fn wait_for_greeting(server: &TestServer, text: &str) {
    let seen = eventually(Duration::from_secs(10), || {
        let mut c = server.client();
        let greeted = c.greeting.text.contains(text);
        c.cmd("QUIT");
        greeted
    });
    assert!(seen, "no greeting {text:?} after the reload");
}

/// A new connection greeted 220, once the sessions that ended (earlier
/// probes among them) have given their places back.
fn admitted(server: &TestServer) -> RawClient {
    let mut admitted = None;
    let fits = eventually(Duration::from_secs(10), || {
        let c = server.client();
        let code = c.greeting.code;
        admitted = Some(c);
        code == 220
    });
    assert!(fits, "no place for a new session");
    admitted.unwrap()
}

#[test]
fn config_reload_applies_to_new_sessions_and_keeps_open_ones_as_they_were() {
    let first = "[server]\ngreeting = \"first greeting\"\n";
    let server = TestServer::start_with_config(first, &[]);
    let mut before = server.login();
    before.expect("TYPE I", 200);

    // Denied names, a per-address limit, a new greeting; and a setting
    // only a restart changes: another storage root.
    let other_root = server.root.with_file_name("elsewhere");
    reload_with(
        &server,
        &format!(
            "[server]\ngreeting = \"second greeting\"\ndenied_names = [\"*.exe\"]\n\
             [limits]\nmax_sessions_per_address = 3\n[storage]\nroot = \"{}\"\n",
            other_root.display()
        ),
    );
    wait_for_greeting(&server, "second greeting");

    let mut after = server.login();
    after.expect("TYPE I", 200);
    let refused = put_any(&mut after, "STOR new.exe", b"MZ");
    assert_eq!(refused.code, 553, "{refused:?}");
    // The session opened before keeps the rules it started with.
    assert_eq!(put_any(&mut before, "STOR old.exe", b"MZ").code, 226);
    assert_eq!(server.read("old.exe"), b"MZ");
    // The storage root only a restart changes: a new session's upload
    // lands in the old one.
    assert_eq!(put_any(&mut after, "STOR new.txt", b"text").code, 226);
    assert_eq!(server.read("new.txt"), b"text", "the storage root stayed");
    assert!(!other_root.exists());

    // The limit counts the session opened before the reload: with it and
    // `after`, one more fits (once the probes above have ended), the next
    // is refused.
    let third = admitted(&server);
    assert_eq!(server.client().greeting.code, 421, "a fourth session from one address");
    drop(third);

    // A file that does not load changes nothing: for the next second
    // every new session still gets the second greeting (a reload takes
    // milliseconds), and a good file after it is taken.
    reload_with(&server, "[server]\ngreeting = \"third greeting\"\nno_such_key = 1\n");
    let until = std::time::Instant::now() + Duration::from_secs(1);
    let mut greeted = 0;
    while std::time::Instant::now() < until {
        let mut c = server.client();
        let code = c.greeting.code;
        if code == 220 {
            assert!(c.greeting.text.contains("second greeting"), "{:?}", c.greeting);
            c.cmd("QUIT");
            greeted += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(greeted > 0, "no session got in to be greeted");
    reload_with(&server, "[server]\ngreeting = \"fourth greeting\"\n");
    wait_for_greeting(&server, "fourth greeting");
    after.expect("NOOP", 200);
    before.expect("NOOP", 200);
}

#[test]
fn config_reload_lowers_max_sessions_as_sessions_end() {
    let limits = |n: usize| format!("[limits]\nmax_sessions = {n}\nqueue_when_full = false\n");
    let server = TestServer::start_with_config(&limits(10), &[]);
    let mut open: Vec<RawClient> = (0..3).map(|_| server.login()).collect();
    reload_with(&server, &limits(2));
    let full = eventually(Duration::from_secs(10), || {
        let mut c = server.client();
        let code = c.greeting.code;
        if code == 220 {
            c.cmd("QUIT");
        }
        code == 421
    });
    assert!(full, "three sessions open, two allowed: a new one is refused");
    for c in open.iter_mut().skip(1) {
        c.expect("QUIT", 221);
    }
    open.truncate(1);
    // One session left of two allowed: one more fits (once the probes
    // have given their places back), then none.
    let mut second = admitted(&server);
    second.login(USER, PASS);
    assert_eq!(server.client().greeting.code, 421, "two sessions open, two allowed");
    // Raised again: at once.
    reload_with(&server, &limits(5));
    admitted(&server);
    open[0].expect("NOOP", 200);
}

/// The log says what a reload did: a broken file is refused with its
/// error, and a changed setting only a restart applies is named.
#[test]
fn config_reload_logs_a_refused_file_and_the_settings_kept_until_a_restart() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferroftp.toml");
    let log = dir.path().join("server.log");
    std::fs::write(&config, "[storage]\ndurability = \"file\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--user", "u:p", "--root"])
        .arg(dir.path().join("root"))
        .arg("--config")
        .arg(&config)
        .env("FERROFTP_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let listening = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("listening on ftp://"));
    assert!(listening);
    let hup = |toml: &str| {
        let next = config.with_extension("next");
        std::fs::write(&next, toml).unwrap();
        std::fs::rename(&next, &config).unwrap();
        // SAFETY: kill(2) on the child's own pid.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) }, 0);
    };
    let logged = |text: &str| {
        eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text))
        })
    };

    hup("[storage]\ndurability = \"none\"\n[server]\ngreeting = \"hi\"\n");
    assert!(logged("configuration reloaded for new sessions"));
    assert!(
        // (The log may colour the field's name: its value is matched alone.)
        logged("take effect only at a restart were kept") && logged("[\"storage\"]"),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    hup("[storage]\ndurability = \"sometimes\"\n");
    assert!(
        logged("configuration reload failed"),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let _ = child.kill();
    let _ = child.wait();
}
