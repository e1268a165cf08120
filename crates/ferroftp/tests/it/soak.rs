//! Soak: 500 sessions at once, each a thread driving a raw control
//! connection through mixed uploads, read-backs, downloads of known files,
//! listings, deletions and aborted transfers (both directions) for a
//! bounded time. Every byte is checked by hash: uploads are read back over
//! FTP and, at the end, from disk; downloads are compared to the files the
//! test wrote. No file may be lost, and no aborted upload may leave
//! anything behind.
//!
//! Memory: the server's RSS is read from /proc after a warm-up round (500
//! sessions that all close) and again after the measured round (500 more
//! sessions, all closed): both readings are taken in the same state, with
//! no session open, after the same peak concurrency, so what grows between
//! them is what the sessions and operations leaked.
//!
//! FERROFTP_SOAK_SECS sets the measured round's length (default 30 s, so
//! the whole test stays under a minute on the 2-core machine; the warm-up
//! round is a quarter of it, at least 5 s); FERROFTP_SOAK_SESSIONS the
//! number of sessions (default 500).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::{payload, RawClient, TestServer, PASS, USER};

/// Growth of the server's RSS allowed between the two readings. A leak of
/// one small allocation per operation (~100 B over the tens of thousands
/// the measured round runs) or of one session's buffers per session (a 64
/// KiB transfer buffer over 500 sessions is 32 MiB) goes over it; what
/// stays under it is allocator noise: glibc keeps freed memory in up to 16
/// arenas on 2 cores, whose high-water marks move by a few MiB between two
/// rounds of the same load.
const MAX_RSS_GROWTH_KIB: u64 = 20 * 1024;

/// Known files every session downloads and compares: (name, size).
const KNOWN: &[(&str, usize)] = &[
    ("k0", 0),
    ("k1", 1),
    ("k2", 1000),
    ("k3", 4096),
    ("k4", 65_536),
    ("k5", 200_003),
    ("k6", 1 << 20),
];
/// A sparse file large enough that an aborted download never completes.
const HUGE: u64 = 1 << 30;
/// Files a session keeps at most; beyond, it deletes the oldest.
const MAX_FILES: usize = 8;

/// FNV-1a, 64 bits: enough to tell a changed byte (not an adversary).
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Raises this process's open-file limit (the server, spawned after,
/// inherits it): each session holds a control and a data connection here,
/// and a control connection, a data listener or connection and a file in
/// the server, which passes 1024 at 500 sessions.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a `struct rlimit` owned here.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) },
        0,
        "getrlimit"
    );
    if lim.rlim_cur >= want {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // Raising the hard limit needs root; fall back to the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        let capped = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) }, 0, "setrlimit");
        assert!(
            lim.rlim_max >= want,
            "open-file hard limit {} is below the {want} the soak needs",
            lim.rlim_max
        );
    }
}

/// The server's resident set, in KiB.
fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// TIME_WAIT sockets on IPv6 loopback, where the soak runs.
fn time_wait_sockets() -> usize {
    // /proc/net/tcp6: "sl local rem st ...", state 06 is TIME_WAIT.
    std::fs::read_to_string("/proc/net/tcp6")
        .map(|t| {
            t.lines()
                .skip(1)
                .filter(|l| l.split_whitespace().nth(3) == Some("06"))
                .count()
        })
        .unwrap_or(0)
}

/// A round opens tens of thousands of data connections, each leaving a
/// TIME_WAIT socket that holds an ephemeral port for a minute; the next
/// round starts once most have expired, or the server would rightly answer
/// EPSV with 425 (no port available).
fn wait_for_free_ports() {
    let start = Instant::now();
    while time_wait_sockets() > 8000 && start.elapsed() < Duration::from_secs(75) {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// RSS once the server has let go of a round's sessions: read until two
/// readings a quarter-second apart agree within 64 KiB (at most 5 s).
fn settled_rss(pid: u32) -> u64 {
    // The server hands freed memory back every `server.memory_trim_interval`
    // (10 s by default): let one hand-back happen first.
    std::thread::sleep(Duration::from_secs(11));
    let start = Instant::now();
    let mut last = rss_kib(pid, "VmRSS:");
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = rss_kib(pid, "VmRSS:");
        if now.abs_diff(last) <= 64 || start.elapsed() > Duration::from_secs(5) {
            return now;
        }
        last = now;
    }
}

#[derive(Default)]
struct Tally {
    uploads: AtomicU64,
    readbacks: AtomicU64,
    downloads: AtomicU64,
    listings: AtomicU64,
    deletes: AtomicU64,
    aborted_downloads: AtomicU64,
    aborted_uploads: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Tally {
    fn ops(&self) -> u64 {
        [
            &self.uploads,
            &self.readbacks,
            &self.downloads,
            &self.listings,
            &self.deletes,
            &self.aborted_downloads,
            &self.aborted_uploads,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} ops: {} uploads, {} read-backs, {} downloads, {} listings, {} deletes, {} aborted downloads, \
             {} aborted uploads; {} MiB up, {} MiB down",
            self.ops(),
            g(&self.uploads),
            g(&self.readbacks),
            g(&self.downloads),
            g(&self.listings),
            g(&self.deletes),
            g(&self.aborted_downloads),
            g(&self.aborted_uploads),
            g(&self.bytes_up) >> 20,
            g(&self.bytes_down) >> 20,
        )
    }
}

/// xorshift64*: each session's own sequence of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A file a session uploaded and has not deleted: (length, seed, hash).
type Files = BTreeMap<String, (usize, u64, u64)>;

struct Session {
    c: RawClient,
    dir: String,
    rng: Rng,
    files: Files,
    next_name: u64,
    seed_base: u64,
}

impl Session {
    fn data(&mut self) -> TcpStream {
        let s = self.c.epsv();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// A transfer command whose data connection is already connected: 150
    /// or 125.
    fn opened(&mut self, line: &str) {
        let r = self.c.cmd(line);
        assert!(r.code == 150 || r.code == 125, "{line:?} -> {r:?}");
    }

    /// RETR into memory; the final reply must be 226.
    fn retr(&mut self, path: &str) -> Vec<u8> {
        let (bytes, reply) = self.c.fetch(&format!("RETR {path}"));
        assert_eq!(reply.code, 226, "RETR {path}: {reply:?}");
        bytes
    }

    fn upload(&mut self, t: &Tally) {
        let len = match self.rng.below(100) {
            0..=9 => self.rng.below(2) as usize,
            10..=94 => self.rng.below(64 * 1024) as usize,
            _ => 256 * 1024 + self.rng.below(256 * 1024) as usize,
        };
        let seed = self.seed_base + self.next_name;
        let name = format!("f{}", self.next_name);
        self.next_name += 1;
        let bytes = payload(len, seed);
        let path = format!("{}/{name}", self.dir);
        let reply = self.c.put(&format!("STOR {path}"), &bytes);
        assert_eq!(reply.code, 226, "STOR {path}: {reply:?}");
        self.files.insert(name, (len, seed, hash(&bytes)));
        t.uploads.fetch_add(1, Ordering::Relaxed);
        t.bytes_up.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn pick(&mut self) -> Option<String> {
        if self.files.is_empty() {
            return None;
        }
        let i = self.rng.below(self.files.len() as u64) as usize;
        self.files.keys().nth(i).cloned()
    }

    fn readback(&mut self, t: &Tally) {
        let Some(name) = self.pick() else { return self.upload(t) };
        let (len, _, want) = self.files[&name];
        let got = self.retr(&format!("{}/{name}", self.dir));
        assert_eq!((got.len(), hash(&got)), (len, want), "read-back of {}/{name}", self.dir);
        t.readbacks.fetch_add(1, Ordering::Relaxed);
        t.bytes_down.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn download(&mut self, t: &Tally, known: &[u64]) {
        let i = self.rng.below(KNOWN.len() as u64) as usize;
        let (name, len) = KNOWN[i];
        let got = self.retr(&format!("/known/{name}"));
        assert_eq!((got.len(), hash(&got)), (len, known[i]), "download of /known/{name}");
        t.downloads.fetch_add(1, Ordering::Relaxed);
        t.bytes_down.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// NLST, MLSD or LIST of the session's directory: exactly its files.
    fn listing(&mut self, t: &Tally) {
        let kind = self.rng.below(3);
        let verb = ["NLST", "MLSD", "LIST"][kind as usize];
        let (bytes, reply) = self.c.fetch(&format!("{verb} {}", self.dir));
        assert_eq!(reply.code, 226, "{verb}: {reply:?}");
        let text = String::from_utf8(bytes).expect("listing is UTF-8");
        let mut seen = BTreeMap::new();
        for line in text.lines() {
            match kind {
                0 => {
                    let name = line.rsplit('/').next().unwrap();
                    seen.insert(name.to_string(), None);
                }
                1 => {
                    let (facts, name) = line.split_once(' ').expect("MLSD line");
                    if !facts.to_ascii_lowercase().contains("type=file;") {
                        continue;
                    }
                    let size = facts
                        .split(';')
                        .find_map(|f| f.to_ascii_lowercase().strip_prefix("size=").map(str::to_string))
                        .and_then(|s| s.parse::<usize>().ok());
                    seen.insert(name.to_string(), size);
                }
                _ => {
                    let name = line.split_whitespace().last().expect("LIST line");
                    seen.insert(name.to_string(), None);
                }
            }
        }
        let names: BTreeSet<&String> = seen.keys().collect();
        let want: BTreeSet<&String> = self.files.keys().collect();
        assert_eq!(names, want, "{verb} {} lists other files than were stored", self.dir);
        for (name, size) in &seen {
            if let Some(size) = size {
                assert_eq!(*size, self.files[name].0, "MLSD size of {name}");
            }
        }
        t.listings.fetch_add(1, Ordering::Relaxed);
    }

    fn delete(&mut self, t: &Tally) {
        let Some(name) = self.files.keys().next().cloned() else {
            return;
        };
        self.c.expect(&format!("DELE {}/{name}", self.dir), 250);
        self.files.remove(&name);
        t.deletes.fetch_add(1, Ordering::Relaxed);
    }

    /// RETR of the huge sparse file, ABOR after 64 KiB: 426 then 226.
    fn abort_download(&mut self, t: &Tally) {
        let mut data = self.data();
        self.opened("RETR /known/huge");
        let mut buf = vec![0u8; 64 * 1024];
        data.read_exact(&mut buf).expect("first 64 KiB of the huge file");
        assert!(buf.iter().all(|&b| b == 0), "the sparse file reads as zeros");
        self.c.expect("ABOR", 426);
        self.c.expect_reply(226);
        drop(data);
        t.aborted_downloads.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload held open until every session has one open (`all`), then
    /// finished and recorded like any other.
    fn upload_at_once(&mut self, all: &Barrier, t: &Tally) {
        let len = 128 * 1024;
        let seed = self.seed_base + self.next_name;
        let name = format!("f{}", self.next_name);
        self.next_name += 1;
        let bytes = payload(len, seed);
        let mut data = self.data();
        self.opened(&format!("STOR {}/{name}", self.dir));
        data.write_all(&bytes[..len / 2]).expect("first half of the upload");
        all.wait();
        data.write_all(&bytes[len / 2..]).expect("second half of the upload");
        drop(data);
        self.c.expect_reply(226);
        self.files.insert(name, (len, seed, hash(&bytes)));
        t.uploads.fetch_add(1, Ordering::Relaxed);
        t.bytes_up.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// STOR of a name never stored, ABOR after 64 KiB: 426 then 226, and
    /// (checked by the next listing and at the end) nothing left.
    fn abort_upload(&mut self, t: &Tally) {
        let name = format!("aborted{}", self.next_name);
        self.next_name += 1;
        let mut data = self.data();
        self.opened(&format!("STOR {}/{name}", self.dir));
        data.write_all(&payload(64 * 1024, self.next_name))
            .expect("upload before ABOR");
        self.c.expect("ABOR", 426);
        self.c.expect_reply(226);
        drop(data);
        t.aborted_uploads.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every session of a round shares.
struct RoundShared {
    secs: u64,
    /// All sessions logged in.
    start: Barrier,
    /// All sessions ready for the simultaneous uploads.
    peak: Barrier,
    tally: Arc<Tally>,
    known: Arc<Vec<u64>>,
}

/// One session: log in, wait for all the others, run operations until
/// `deadline`, check a last listing, QUIT. Returns its directory's files.
fn run_session(addr: SocketAddr, dir: String, seed: u64, r: &RoundShared) -> (String, Files) {
    let t = &*r.tally;
    let mut c = RawClient::connect(addr);
    assert_eq!(c.greeting.code, 220, "greeting {:?}", c.greeting);
    c.login(USER, PASS);
    c.expect("TYPE I", 200);
    c.expect(&format!("MKD {dir}"), 257);
    let mut s = Session {
        c,
        dir,
        rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        files: Files::new(),
        next_name: 0,
        seed_base: seed << 32,
    };
    // Every session is logged in before any starts working: 500 at once.
    r.start.wait();
    // First the peak: 500 uploads in flight at once. Each round reaches
    // the same, highest concurrency, so the allocator's high-water mark
    // after either round is the same and the RSS readings compare.
    s.upload_at_once(&r.peak, t);
    let deadline = Instant::now() + Duration::from_secs(r.secs);
    while Instant::now() < deadline {
        if s.files.len() >= MAX_FILES {
            s.delete(t);
        }
        match s.rng.below(100) {
            0..=29 => s.upload(t),
            30..=49 => s.readback(t),
            50..=69 => s.download(t, &r.known),
            70..=81 => s.listing(t),
            82..=85 => s.delete(t),
            86..=92 => s.abort_download(t),
            _ => s.abort_upload(t),
        }
        // Think time keeps 500 sessions from saturating two cores.
        std::thread::sleep(Duration::from_millis(20 + s.rng.below(180)));
    }
    s.listing(t);
    s.c.expect("QUIT", 221);
    (s.dir, s.files)
}

/// Runs `sessions` sessions for `secs`, then checks every file on disk.
fn round(server: &TestServer, name: &str, sessions: usize, secs: u64, known: &Arc<Vec<u64>>) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let shared = Arc::new(RoundShared {
        secs,
        start: Barrier::new(sessions + 1),
        peak: Barrier::new(sessions),
        tally: tally.clone(),
        known: known.clone(),
    });
    let mut c = server.login();
    c.expect(&format!("MKD /{name}"), 257);
    c.expect("QUIT", 221);
    let began = Instant::now();
    let handles: Vec<_> = (0..sessions)
        .map(|i| {
            let shared = shared.clone();
            let addr = server.addr;
            let dir = format!("/{name}/s{i}");
            let seed = (i as u64 + 1) * 7919 + name.len() as u64;
            std::thread::Builder::new()
                .name(format!("soak-{name}-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || run_session(addr, dir, seed, &shared))
                .expect("spawn session thread")
        })
        .collect();
    shared.start.wait();
    let logged_in = began.elapsed();
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok(r) => results.push(r),
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {sessions} sessions failed; first: {}",
        failures.len(),
        failures[0]
    );
    // On disk: each directory holds exactly the session's files (no lost
    // file, no aborted upload, no temporary file), each byte for byte.
    let mut files = 0;
    for (dir, want) in &results {
        let on_disk: BTreeSet<String> = std::fs::read_dir(server.path(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let names: BTreeSet<String> = want.keys().cloned().collect();
        assert_eq!(on_disk, names, "{dir} on disk");
        for (n, (len, seed, h)) in want {
            let got = server.read(&format!("{dir}/{n}"));
            assert_eq!((got.len(), hash(&got)), (*len, *h), "{dir}/{n} on disk");
            assert!(got == payload(*len, *seed), "{dir}/{n} on disk");
            files += 1;
        }
    }
    println!(
        "soak {name}: {sessions} sessions (all logged in after {:.1} s), {:.1} s in all; {}; {files} files checked on disk",
        logged_in.as_secs_f64(),
        began.elapsed().as_secs_f64(),
        tally.line()
    );
    tally
}

#[test]
fn soak_500_sessions_mixed_transfers_memory_flat() {
    let secs = env_u64("FERROFTP_SOAK_SECS", 30).max(1);
    let sessions = env_u64("FERROFTP_SOAK_SESSIONS", 500).max(1) as usize;
    let rounds = env_u64("FERROFTP_SOAK_ROUNDS", 1).max(1);
    raise_fd_limit(8 * sessions as u64 + 1024);
    let config = format!(
        "[limits]\nmax_sessions = {}\nmax_sessions_per_address = 0\n",
        sessions * 2
    );
    // Over IPv6 loopback: each data connection leaves a TIME_WAIT socket
    // for a minute, and tens of thousands of them use up the ephemeral
    // ports of their address. On ::1 they leave 127.0.0.1's ports to the
    // tests running beside this one.
    let server = TestServer::start_with_config_on("[::1]:0", &config, &[]);
    let pid = server.pid();
    let mut known = Vec::new();
    for (i, (name, len)) in KNOWN.iter().enumerate() {
        let bytes = payload(*len, 1_000 + i as u64);
        known.push(hash(&bytes));
        server.write(&format!("known/{name}"), &bytes);
    }
    std::fs::File::create(server.path("known/huge"))
        .unwrap()
        .set_len(HUGE)
        .unwrap();
    let known = Arc::new(known);
    // One login first: it pays argon2 and fills the credentials cache, so
    // the 500 that follow do not queue behind the hashing.
    server.login().expect("QUIT", 221);
    let start_rss = rss_kib(pid, "VmRSS:");

    round(&server, "warmup", sessions, (secs / 4).max(5), &known);
    let warm_rss = settled_rss(pid);
    println!(
        "soak RSS after the warm-up: {warm_rss} KiB, {} server threads",
        rss_kib(pid, "Threads:")
    );
    let mut tally = Arc::new(Tally::default());
    let mut end_rss = warm_rss;
    for r in 0..rounds {
        wait_for_free_ports();
        tally = round(&server, &format!("measured{r}"), sessions, secs, &known);
        end_rss = settled_rss(pid);
        println!(
            "soak RSS after round {r}: {end_rss} KiB, {} server threads",
            rss_kib(pid, "Threads:")
        );
    }
    let peak = rss_kib(pid, "VmHWM:");

    // Still serving.
    let mut c = server.login();
    c.expect("NOOP", 200);
    c.expect("QUIT", 221);
    println!(
        "soak RSS: {start_rss} KiB at start, {warm_rss} KiB after the warm-up, {end_rss} KiB at the end \
         (peak {peak} KiB); growth {} KiB over {} operations (allowed {MAX_RSS_GROWTH_KIB} KiB)",
        end_rss as i64 - warm_rss as i64,
        tally.ops()
    );
    assert!(
        tally.ops() >= sessions as u64,
        "too few operations ran: {}",
        tally.line()
    );
    assert!(
        end_rss <= warm_rss + MAX_RSS_GROWTH_KIB,
        "server RSS grew from {warm_rss} KiB to {end_rss} KiB"
    );
}
