//! Scale-out (docs/scaling.md) on one machine: a three-node Garage cluster
//! with replication factor 3, two stateless ferroftp nodes on the same
//! bucket, prefix and users file, and HAProxy in front (`mode tcp`,
//! `send-proxy-v2`) with a frontend per node and a balanced one. Clients
//! connect from 127.0.0.2 and 127.0.0.3, so the nodes see the proxy
//! (127.0.0.1) and the PROXY header tell two different hosts apart.
//!
//! What it shows: bytes uploaded through one node are read through the
//! other, listings agree; the real client address reaches the nodes
//! (STAT, PORT to the client's own address through the proxy, the
//! per-address limit); with a Garage node stopped transfers still work;
//! with a ferroftp node stopped the balanced frontend goes to the other.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, TestServer};
use crate::s3_util::{s3_table, unique_prefix, wait_until_down, Garage};
use crate::security_util::{client_from, free_ports_in_a_row, OTHER};

/// The clients' hosts (Linux routes all of 127/8 over loopback).
const CLIENT: IpAddr = OTHER;
const CLIENT_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// Passive ports per node, each node its own range.
const PASSIVE_PORTS: u16 = 6;
const MAX_PER_ADDRESS: usize = 3;

/// HAProxy in the foreground with a config of the test's; killed on drop
/// (a panic included) and, should the test thread die without unwinding,
/// by the kernel (PR_SET_PDEATHSIG).
struct HaProxy {
    child: Child,
    _dir: tempfile::TempDir,
}

/// `haproxy` from PATH, or Debian's /usr/sbin (not in a non-root PATH).
fn haproxy_bin() -> std::path::PathBuf {
    let sbin = Path::new("/usr/sbin/haproxy");
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file());
    in_path.unwrap_or_else(|| sbin.to_path_buf())
}

impl HaProxy {
    fn start(config: &str, frontends: &[SocketAddr]) -> HaProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new(haproxy_bin()).arg("-c").arg("-f").arg(&path).output();
        let check = check.expect("haproxy is installed (scripts/test installs it)");
        assert!(
            check.status.success(),
            "haproxy rejects the config:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let mut cmd = Command::new(haproxy_bin());
        cmd.arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: prctl only sets a flag of the child itself; nothing else
        // runs between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn haproxy");
        let proxy = HaProxy { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in frontends {
            while TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_err() {
                assert!(Instant::now() < deadline, "haproxy does not listen on {addr}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        proxy
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One ferroftp node: its own Garage endpoint, greeting and passive range;
/// the bucket, prefix, users file and PROXY settings every node shares.
fn node(g: &Garage, endpoint: &str, name: &str, prefix: &str, users: &Path) -> TestServer {
    let lo = free_ports_in_a_row(PASSIVE_PORTS);
    let toml = format!(
        "[server]\ngreeting = \"ferroftp node {name}\"\npassive_address = \"127.0.0.1\"\n\
         passive_ports = \"{lo}-{}\"\nproxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [limits]\nmax_sessions_per_address = {MAX_PER_ADDRESS}\n\
         [auth]\nusers_file = \"{}\"\n{}",
        lo + PASSIVE_PORTS - 1,
        users.display(),
        s3_table(g, prefix)
    );
    let flags = crate::s3_util::s3_flags(g, endpoint);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestServer::start_with_config(&toml, &flags)
}

/// The HAProxy config: `node_a` and `node_b` frontends to one node each,
/// `balanced` round-robin over both with health checks that carry a PROXY
/// header too (`check-send-proxy`), and a retry on the other node when one
/// refuses (`option redispatch`).
fn haproxy_config(a: SocketAddr, b: SocketAddr, fa: SocketAddr, fb: SocketAddr, fl: SocketAddr) -> String {
    format!(
        "global\n  maxconn 200\n  nbthread 1\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n  \
         retries 2\n  option redispatch\n\
         frontend node_a\n  bind {fa}\n  default_backend node_a\n\
         backend node_a\n  server a {a} send-proxy-v2\n\
         frontend node_b\n  bind {fb}\n  default_backend node_b\n\
         backend node_b\n  server b {b} send-proxy-v2\n\
         frontend balanced\n  bind {fl}\n  default_backend both\n\
         backend both\n  balance roundrobin\n  \
         server a {a} send-proxy-v2 check check-send-proxy inter 500ms fall 1 rise 1\n  \
         server b {b} send-proxy-v2 check check-send-proxy inter 500ms fall 1 rise 1\n"
    )
}

/// The client's side, in Python's ftplib: every connection (control and
/// data) from 127.0.0.2, trusting the address in PASV replies as a client
/// on another host must (it names the node, not the balancer).
const CLIENT_PRELUDE: &str = r#"
import ftplib, io, sys
A, B, BALANCED, LOCAL = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def session(port):
    ftp = ftplib.FTP(source_address=("127.0.0.2", 0), timeout=30)
    ftp.trust_server_pasv_ipv4_address = True
    greeting = ftp.connect("127.0.0.1", port)
    ftp.login("alice", "alice-secret")
    return ftp, greeting

def fetch(ftp, name, **kw):
    buf = io.BytesIO()
    assert ftp.retrbinary("RETR " + name, buf.write, **kw).startswith("226")
    return buf.getvalue()

def listing(ftp, path):
    names = sorted(ftp.nlst(path))
    facts = sorted((n, f["type"], f.get("size")) for n, f in ftp.mlsd(path))
    return names, facts

def local(name):
    with open(LOCAL + "/" + name, "rb") as f:
        return f.read()
"#;

fn run_client(ports: [u16; 3], local: &Path, body: &str) -> String {
    let script = format!("{CLIENT_PRELUDE}\n{body}\nprint('done')\n");
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script);
    for p in ports {
        cmd.arg(p.to_string());
    }
    cmd.arg(local);
    let (ok, out, err) = common::run(&mut cmd, Duration::from_secs(120));
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(ok, "client script failed:\n{err}\nstdout:\n{out}");
    assert!(out.trim_end().ends_with("done"), "script did not finish: {out}");
    out
}

/// Uploads through node A, reads through node B (and the other way), and
/// compares listings; `round` keeps the names of each run apart.
const ROUND_TRIP: &str = r#"
a, greeting_a = session(A)
b, greeting_b = session(B)
assert "node A" in greeting_a and "node B" in greeting_b, (greeting_a, greeting_b)
big, small = local("big.bin"), local("small.txt")
d = "round-" + ROUND
a.mkd(d)
assert a.storbinary("STOR %s/big.bin" % d, io.BytesIO(big)).startswith("226")
assert b.storbinary("STOR %s/small.txt" % d, io.BytesIO(small)).startswith("226")
assert fetch(b, d + "/big.bin") == big, "B reads what A wrote"
assert fetch(a, d + "/small.txt") == small, "A reads what B wrote"
assert fetch(b, d + "/big.bin", rest=5 * 1024 * 1024 + 3) == big[5 * 1024 * 1024 + 3:]
la, lb = listing(a, d), listing(b, d)
assert la == lb, (la, lb)
assert la[1] == [("big.bin", "file", str(len(big))), ("small.txt", "file", str(len(small)))], la
assert b.size(d + "/big.bin") == len(big)
a.quit(); b.quit()
"#;

#[test]
fn s3_scaleout_two_nodes_behind_haproxy_on_a_three_node_garage() {
    let started = Instant::now();
    let g = Garage::start(3);
    assert_eq!(g.endpoints.len(), 3);
    eprintln!("three-node Garage up in {:?}", started.elapsed());

    // One users file, shared by both nodes.
    let shared = tempfile::tempdir().unwrap();
    let users = shared.path().join("users.toml");
    let added = Command::new(env!("CARGO_BIN_EXE_ferroftp"))
        .args(["user", "add", "--file"])
        .arg(&users)
        .args(["alice", "--password", "alice-secret", "--home", "/alice"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));

    // Each ferroftp node talks to its own Garage node; the third Garage
    // node is the one that fails later.
    let prefix = unique_prefix("scaleout");
    let node_a = node(&g, &g.endpoints[0], "A", &prefix, &users);
    let node_b = node(&g, &g.endpoints[1], "B", &prefix, &users);
    let loopback = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let (fa, fb, fl) = (loopback(free_port()), loopback(free_port()), loopback(free_port()));
    let config = haproxy_config(node_a.addr, node_b.addr, fa, fb, fl);
    let _haproxy = HaProxy::start(&config, &[fa, fb, fl]);
    let ports = [fa.port(), fb.port(), fl.port()];

    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("big.bin"), common::payload(6 * 1024 * 1024 + 77, 12)).unwrap();
    std::fs::write(local.path().join("small.txt"), b"from the other node\n").unwrap();

    let t = Instant::now();
    run_client(ports, local.path(), &format!("ROUND = '1'\n{ROUND_TRIP}"));
    eprintln!("round trip through A and B: {:?}", t.elapsed());

    // The client's own address reaches the node through the proxy: STAT
    // says so, PORT to 127.0.0.2 is accepted (ftplib's active mode binds
    // the control connection's local address) and used, PORT to the
    // proxy's address is a bounce attempt (504).
    run_client(
        ports,
        local.path(),
        r#"
a, _ = session(A)
stat = a.sendcmd("STAT")
assert "Connected from 127.0.0.2" in stat and "Through proxy 127.0.0.1" in stat, stat
a.set_pasv(False)
assert fetch(a, "round-1/small.txt") == local("small.txt")
try:
    a.sendcmd("PORT 127,0,0,1,200,1")
    raise AssertionError("PORT to the proxy's address accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("504"), e
a.quit()
"#,
    );

    // The per-address limit counts the client, not the proxy all clients
    // come through: 127.0.0.2 gets MAX_PER_ADDRESS sessions on a node,
    // then 421; 127.0.0.3 still gets in.
    let held: Vec<_> = (0..MAX_PER_ADDRESS).map(|_| client_from(CLIENT, fa)).collect();
    for c in &held {
        assert_eq!(c.greeting.code, 220, "{:?}", c.greeting);
    }
    let over = client_from(CLIENT, fa);
    assert_eq!(over.greeting.code, 421, "{:?}", over.greeting);
    assert!(
        over.greeting.text.contains("Too many connections"),
        "{:?}",
        over.greeting
    );
    let mut other = client_from(CLIENT_2, fa);
    assert_eq!(other.greeting.code, 220, "{:?}", other.greeting);
    other.login("alice", "alice-secret");
    drop((held, over, other));

    // The balanced frontend spreads sessions over both nodes.
    let greetings: Vec<String> = (0..4).map(|_| client_from(CLIENT_2, fl).greeting.text).collect();
    assert!(greetings.iter().any(|t| t.contains("node A")), "{greetings:?}");
    assert!(greetings.iter().any(|t| t.contains("node B")), "{greetings:?}");

    // A Garage node fails: with replication 3, two of three still make a
    // quorum for reads and writes.
    let t = Instant::now();
    g.stop_node(3);
    wait_until_down(&g.endpoints[2]);
    eprintln!("Garage node 3 stopped in {:?}", t.elapsed());
    let t = Instant::now();
    run_client(ports, local.path(), &format!("ROUND = '2'\n{ROUND_TRIP}"));
    eprintln!("round trip with a Garage node down: {:?}", t.elapsed());
    // What was written before the failure is still there, seen alike.
    run_client(
        ports,
        local.path(),
        r#"
a, _ = session(A)
b, _ = session(B)
assert fetch(b, "round-1/big.bin") == local("big.bin")
assert listing(a, "/") == listing(b, "/") == (["round-1", "round-2"], [("round-1", "dir", None), ("round-2", "dir", None)]), listing(a, "/")
"#,
    );

    // A ferroftp node fails: the balanced frontend sends every new session
    // to the other one (retried at once, then the health check marks the
    // dead node down).
    drop(node_a);
    let t = Instant::now();
    for _ in 0..4 {
        let mut c = client_from(CLIENT, fl);
        assert_eq!(c.greeting.code, 220, "{:?}", c.greeting);
        assert!(c.greeting.text.contains("node B"), "{:?}", c.greeting);
        c.login("alice", "alice-secret");
        c.expect("SIZE round-2/small.txt", 213);
    }
    eprintln!("four sessions through the balancer with node A gone: {:?}", t.elapsed());
    eprintln!("scale-out test in all: {:?}", started.elapsed());
}
