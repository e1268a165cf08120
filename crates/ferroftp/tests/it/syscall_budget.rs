//! The benchmark's regression guard that is not timing-based: the system
//! calls the server makes per small download, counted by strace. A change
//! that adds a wake of the other worker thread, a copy through user space
//! or a storage round trip per transfer shows here as counts, whatever
//! the machine's speed. The bounds leave room above today's figures (see
//! the test) for calls that vary with timing, not for another call per file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{payload, TestServer};

/// strace attached to every thread of `pid`, counting calls into `out`.
struct Strace {
    child: Child,
}

impl Strace {
    fn attach(pid: u32, out: &Path) -> Strace {
        let child = Command::new("strace")
            .args(["-f", "-c", "-o"])
            .arg(out)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strace is needed for this test (scripts/test installs it)");
        // Attached once every thread of the server shows a tracer.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !all_traced(pid) {
            assert!(Instant::now() < deadline, "strace did not attach to {pid}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Strace { child }
    }

    /// Detaches and returns the calls per system call name.
    fn finish(mut self, out: &Path) -> BTreeMap<String, u64> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert!(
            status.success() || status.code() == Some(130) || status.code().is_none(),
            "strace: {status:?}"
        );
        parse_summary(&std::fs::read_to_string(out).unwrap())
    }
}

fn all_traced(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("status"))
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
            })
            .unwrap_or(false)
    })
}

/// strace -c's table: `% time  seconds  usecs/call  calls  [errors]  syscall`.
fn parse_summary(text: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let name = fields[fields.len() - 1];
        if name == "total" {
            continue;
        }
        calls.insert(name.to_owned(), fields[3].parse().expect("calls column"));
    }
    calls
}

#[test]
fn a_small_download_costs_a_bounded_number_of_system_calls() {
    const FILES: u64 = 100;
    let server = TestServer::start(&[]);
    let body = payload(4096, 3);
    server.write("small", &body);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    // Warm: the first download opens what later ones reuse.
    assert!(c.fetch("RETR small").0 == body);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("strace.txt");
    let strace = Strace::attach(server.pid(), &out);
    for _ in 0..FILES {
        let (got, reply) = c.fetch("RETR small");
        assert_eq!(reply.code, 226);
        assert!(got == body, "download differs");
    }
    // The last 226 is sent before the session's loop goes back to waiting.
    std::thread::sleep(Duration::from_millis(200));
    let calls = strace.finish(&out);
    let per_file = |name: &str| calls.get(name).copied().unwrap_or(0) as f64 / FILES as f64;
    // A debug build's std checks with fcntl that each descriptor it adopts
    // is open (three per download); release builds make no such call.
    let total = calls
        .iter()
        .filter(|(name, _)| *name != "fcntl")
        .map(|(_, n)| n)
        .sum::<u64>() as f64
        / FILES as f64;
    let report = format!("{total:.1} calls per download besides fcntl: {calls:?}");
    // Today 28: the listener (socket, setsockopt, bind, listen,
    // getsockname, getrandom for its port, poll for 125/150, accept4,
    // close), the data connection (setsockopt for TCP_CORK, sendfile,
    // shutdown, close), the file (openat2, fstat, close), three replies,
    // the commands' reads and the epoll registrations and waits. Reads and
    // waits vary a little with timing.
    assert!(total <= 30.0, "{report}");
    // Zero-copy: the file goes out by sendfile, never read into the server.
    assert!(per_file("sendfile") >= 1.0, "{report}");
    assert_eq!(
        per_file("read") + per_file("pread64") + per_file("preadv2"),
        0.0,
        "{report}"
    );
    // No wake of another thread per transfer (today: none in 100).
    assert!(per_file("futex") <= 0.2, "{report}");
    // One storage call (the open) per download, no stat beside it.
    assert!(per_file("openat") + per_file("openat2") <= 1.0, "{report}");
}
