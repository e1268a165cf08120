//! Large plain uploads received on threads of their own
//! (`server.receive_threads`): an upload past its first 4 MiB takes one
//! while one is free, the cap holds, ABOR and a stall end the thread and
//! leave no file, a quota or a full disk crossed on the thread answers as
//! on the runtime, and every byte lands whichever way it was received.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{payload, RawClient, TestServer};
use crate::replies_util::{connect_data, epsv_addr};
use crate::safety_util::{login_as, names_in, put_any, server_with_users, Tmpfs};

/// Past the 4 MiB an upload receives on the runtime first.
const LEN: usize = 24 << 20;

const THREAD: &str = "ferroftp-recv";

fn receive_threads(server: &TestServer) -> usize {
    server.threads_named(THREAD)
}

fn wait_for_receive_threads(server: &TestServer, want: usize) {
    server.wait_for_threads_named(THREAD, want);
}

/// `line` (a STOR or APPE) started, its data connection open and the first
/// `first` bytes of `bytes` sent.
fn start_upload(c: &mut RawClient, line: &str, bytes: &[u8], first: usize) -> TcpStream {
    c.expect("TYPE I", 200);
    let addr = epsv_addr(c);
    c.expect(line, 150);
    let mut data = connect_data(addr);
    data.write_all(&bytes[..first]).unwrap();
    data
}

/// [`start_upload`], and waits for the upload to move to its thread.
fn start_threaded_upload(server: &TestServer, c: &mut RawClient, line: &str, bytes: &[u8], first: usize) -> TcpStream {
    let data = start_upload(c, line, bytes, first);
    wait_for_receive_threads(server, 1);
    data
}

/// Sends the rest from `from` and ends the data; the final reply.
fn finish_upload(c: &mut RawClient, mut data: TcpStream, bytes: &[u8], from: usize) -> u16 {
    data.write_all(&bytes[from..]).unwrap();
    drop(data);
    c.reply().code
}

#[test]
fn a_large_upload_takes_a_receive_thread_while_one_is_free() {
    let server = TestServer::start_with_config("[server]\nreceive_threads = 1\n", &[]);
    let (one, two, three) = (payload(LEN, 21), payload(LEN, 22), payload(LEN, 23));
    let mut first = server.login();
    let first_data = start_threaded_upload(&server, &mut first, "STOR one", &one, 8 << 20);
    // The cap is taken: the second upload stays on the runtime.
    let mut second = server.login();
    let second_data = start_upload(&mut second, "STOR two", &two, 8 << 20);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(receive_threads(&server), 1);
    assert_eq!(finish_upload(&mut second, second_data, &two, 8 << 20), 226);
    assert!(server.read("two") == two, "the runtime's upload differs");
    assert_eq!(finish_upload(&mut first, first_data, &one, 8 << 20), 226);
    assert!(server.read("one") == one, "the threaded upload differs");
    wait_for_receive_threads(&server, 0);
    // The thread is free again; a small upload never takes it.
    let mut third = server.login();
    let third_data = start_upload(&mut third, "STOR small", &three, 1 << 20);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(receive_threads(&server), 0);
    assert_eq!(finish_upload(&mut third, third_data, &three[..2 << 20], 1 << 20), 226);
    assert!(server.read("small") == three[..2 << 20]);
}

/// After an upload cut short on its thread: the thread ends, neither the
/// file nor a hidden part of it is left, and the session goes on.
fn thread_gone_and_no_file(server: &TestServer, c: &mut RawClient) {
    wait_for_receive_threads(server, 0);
    let left = names_in(&server.path(""));
    assert!(left.is_empty(), "{left:?}");
    c.expect("NOOP", 200);
}

/// ABOR while the thread waits for data: 426 then 226.
#[test]
fn abor_ends_the_thread_and_leaves_no_file() {
    let server = TestServer::start(&[]);
    let bytes = payload(LEN, 24);
    let mut c = server.login();
    let data = start_threaded_upload(&server, &mut c, "STOR cut", &bytes, 8 << 20);
    c.expect("ABOR", 426);
    c.expect_reply(226);
    drop(data);
    thread_gone_and_no_file(&server, &mut c);
}

/// A client that stops sending on the thread: 426 after the stall timeout.
#[test]
fn a_stalled_threaded_upload_426_and_no_file() {
    let server = TestServer::start_with_config("[timeouts]\ntransfer_stall = 1\n", &[]);
    let bytes = payload(LEN, 25);
    let mut c = server.login();
    let _data = start_threaded_upload(&server, &mut c, "STOR stalled", &bytes, 8 << 20);
    let r = c.expect_reply(426);
    assert!(r.text.contains("stalled"), "{r:?}");
    thread_gone_and_no_file(&server, &mut c);
}

/// The client closes its control connection while the thread waits for
/// data: the session ends, the thread with it, and no file is left.
#[test]
fn a_closed_control_connection_ends_the_thread_and_leaves_no_file() {
    let server = TestServer::start(&[]);
    let bytes = payload(LEN, 33);
    let mut c = server.login();
    let data = start_threaded_upload(&server, &mut c, "STOR gone", &bytes, 8 << 20);
    drop(c);
    wait_for_receive_threads(&server, 0);
    drop(data);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !names_in(&server.path("")).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {:?}",
            names_in(&server.path(""))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// STAT while the thread receives counts what it stored.
#[test]
fn stat_counts_the_threads_bytes() {
    let server = TestServer::start(&[]);
    let bytes = payload(LEN, 34);
    let mut c = server.login();
    let mut data = start_threaded_upload(&server, &mut c, "STOR counted", &bytes, 8 << 20);
    data.write_all(&bytes[8 << 20..12 << 20]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.expect("STAT", 213);
        if r.text.contains(&format!("{} bytes so far", 12 << 20)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{r:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(finish_upload(&mut c, data, &bytes, 12 << 20), 226);
    assert!(server.read("counted") == bytes);
}

/// APPE and REST + STOR write in place from the thread too.
#[test]
fn appe_and_rest_stor_on_the_thread() {
    let server = TestServer::start(&[]);
    let head = payload(3 << 20, 26);
    let tail = payload(LEN, 27);
    server.write("grown", &head);
    let mut c = server.login();
    let data = start_threaded_upload(&server, &mut c, "APPE grown", &tail, 8 << 20);
    assert_eq!(finish_upload(&mut c, data, &tail, 8 << 20), 226);
    let mut want = head.clone();
    want.extend_from_slice(&tail);
    assert!(server.read("grown") == want, "APPE on the thread differs");

    server.write("resumed", &head);
    c.expect("REST 1000000", 350);
    let data = start_threaded_upload(&server, &mut c, "STOR resumed", &tail, 8 << 20);
    assert_eq!(finish_upload(&mut c, data, &tail, 8 << 20), 226);
    let mut want = head[..1_000_000].to_vec();
    want.extend_from_slice(&tail);
    assert!(server.read("resumed") == want, "REST + STOR on the thread differs");
}

/// Sends the rest of an upload the server is to cut short, ignoring the
/// write that fails once it has; the final reply.
fn finish_cut_upload(c: &mut RawClient, mut data: TcpStream, bytes: &[u8], from: usize) -> crate::common::Reply {
    for chunk in bytes[from..].chunks(64 << 10) {
        if data.write_all(chunk).is_err() {
            break;
        }
    }
    drop(data);
    c.reply()
}

/// A byte quota crossed after the upload moved to its thread: 552 and
/// nothing of the upload left, as on the runtime.
#[test]
fn a_quota_crossed_on_the_thread_552_and_nothing_left() {
    let (server, _users) = server_with_users(&[("q", &["--home", "/q", "--quota-bytes", "12M"])], "");
    let mut c = login_as(&server, "q");
    let bytes = payload(LEN, 28);
    let data = start_threaded_upload(&server, &mut c, "STOR big", &bytes, 6 << 20);
    assert_quota_552_leaves_nothing(&server, &mut c, data, &bytes);
    // The quota is whole again: a small upload fits.
    assert_eq!(put_any(&mut c, "STOR small", &payload(1 << 20, 29)).code, 226);
}

/// A full disk met on the thread: 452, no partial or hidden file.
#[test]
fn a_full_disk_on_the_thread_452_and_nothing_left() {
    let server = TestServer::start(&[]);
    let small = Tmpfs::mount(&server.path("small"), "12m");
    let mut c = server.login();
    let bytes = payload(LEN, 30);
    let data = start_threaded_upload(&server, &mut c, "STOR small/big", &bytes, 6 << 20);
    let r = finish_cut_upload(&mut c, data, &bytes, 6 << 20);
    assert_eq!(r.code, 452, "{r:?}");
    assert!(names_in(&small.path).is_empty(), "{:?}", names_in(&small.path));
    drop(c);
    drop(server);
    drop(small);
}

#[test]
fn with_receive_threads_0_the_runtime_receives_everything() {
    let server = TestServer::start_with_config("[server]\nreceive_threads = 0\n", &[]);
    let bytes = payload(LEN, 31);
    let mut c = server.login();
    let data = start_upload(&mut c, "STOR big", &bytes, 8 << 20);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(receive_threads(&server), 0);
    assert_eq!(finish_upload(&mut c, data, &bytes, 8 << 20), 226);
    assert!(server.read("big") == bytes);
}

/// The server's open pipes (`/proc/<pid>/fd`): a spliced upload's pipe
/// is a pair.
fn pipes(server: &TestServer) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("pipe:"))
        .count()
}

/// With `server.splice_uploads` the thread goes on splicing (socket → pipe
/// → file, each batch counted first; direct I/O off, so the whole upload
/// is spliced): the thread holds a pipe of its own, the bytes land whole,
/// and a quota crossed by a spliced batch answers 552 and leaves nothing.
#[test]
fn a_spliced_upload_goes_on_splicing_on_the_thread() {
    let (server, _users) = server_with_users(
        &[
            ("s", &["--home", "/s"]),
            ("q", &["--home", "/q", "--quota-bytes", "12M"]),
        ],
        "[server]\nsplice_uploads = true\n[storage]\nupload_direct_io_after = 0\n",
    );
    let idle_pipes = pipes(&server);
    let bytes = payload(LEN, 32);
    let mut c = login_as(&server, "s");
    let data = start_spliced_on_thread(&server, &mut c, "STOR spliced", &bytes, idle_pipes);
    assert_eq!(finish_upload(&mut c, data, &bytes, 6 << 20), 226);
    assert!(server.read("s/spliced") == bytes, "the spliced upload differs");
    wait_for_receive_threads(&server, 0);

    let mut q = login_as(&server, "q");
    let data = start_spliced_on_thread(&server, &mut q, "STOR big", &bytes, idle_pipes);
    assert_quota_552_leaves_nothing(&server, &mut q, data, &bytes);
}

/// Starts a spliced upload and waits until it is on its thread, which
/// must hold a pipe pair of its own (`idle_pipes` open before).
fn start_spliced_on_thread(
    server: &TestServer,
    c: &mut RawClient,
    line: &str,
    bytes: &[u8],
    idle_pipes: usize,
) -> TcpStream {
    let data = start_threaded_upload(server, c, line, bytes, 6 << 20);
    assert_eq!(
        pipes(server),
        idle_pipes + 2,
        "the receive thread splices through no pipe"
    );
    data
}

/// Sends the rest of user q's upload past its 12 MiB quota, crossed on
/// the thread: 552, the thread gone, nothing left in q's home.
fn assert_quota_552_leaves_nothing(server: &TestServer, c: &mut RawClient, data: TcpStream, bytes: &[u8]) {
    let r = finish_cut_upload(c, data, bytes, 6 << 20);
    assert_eq!(r.code, 552, "{r:?}");
    wait_for_receive_threads(server, 0);
    assert!(
        names_in(&server.path("q")).is_empty(),
        "{:?}",
        names_in(&server.path("q"))
    );
}
