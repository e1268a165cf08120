//! Large plain downloads sent from threads of their own
//! (`server.send_threads`): a download takes one while one is free, the
//! cap holds, an ABOR ends the thread, and every byte arrives whichever
//! way a download was sent.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{payload, RawClient, TestServer};
use crate::replies_util::{connect_data, epsv_addr};

/// Large enough for the thread (4 MiB and more left) and for the socket
/// buffers to fill while the client is not reading.
const LEN: usize = 24 << 20;

const THREAD: &str = "ferroftp-send";

fn send_threads(server: &TestServer) -> usize {
    server.threads_named(THREAD)
}

fn wait_for_send_threads(server: &TestServer, want: usize) {
    server.wait_for_threads_named(THREAD, want);
}

/// A RETR started and its data connection open, nothing read yet.
fn start_download(server: &TestServer) -> (RawClient, TcpStream) {
    let mut c = server.login();
    c.expect("TYPE I", 200);
    let addr = epsv_addr(&mut c);
    c.expect("RETR big", 150);
    (c, connect_data(addr))
}

fn read_rest(mut c: RawClient, mut data: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect_reply(226);
    got
}

#[test]
fn a_large_download_takes_a_send_thread_while_one_is_free() {
    let server = TestServer::start_with_config("[server]\nsend_threads = 1\n", &[]);
    let bytes = payload(LEN, 11);
    server.write("big", &bytes);
    let (mut first, first_data) = start_download(&server);
    wait_for_send_threads(&server, 1);
    // The cap is taken: the second download is sent by the runtime.
    let (second, second_data) = start_download(&server);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(send_threads(&server), 1);
    // ABOR ends the first download and its thread.
    first.expect("ABOR", 426);
    first.expect_reply(226);
    drop(first_data);
    wait_for_send_threads(&server, 0);
    assert!(
        read_rest(second, second_data) == bytes,
        "the runtime's download differs"
    );
    // The thread is free again for the next download, which arrives whole.
    let (third, third_data) = start_download(&server);
    wait_for_send_threads(&server, 1);
    assert!(read_rest(third, third_data) == bytes, "the threaded download differs");
    wait_for_send_threads(&server, 0);
    first.expect("NOOP", 200);
}

#[test]
fn a_restarted_large_download_sends_the_rest_from_a_thread() {
    let server = TestServer::start(&[]);
    let bytes = payload(LEN, 12);
    server.write("big", &bytes);
    let mut c = server.login();
    c.expect("TYPE I", 200);
    c.expect("REST 1000001", 350);
    let (got, r) = c.fetch("RETR big");
    assert_eq!(r.code, 226, "{r:?}");
    assert!(got == bytes[1_000_001..], "the rest after REST differs");
}

#[test]
fn with_send_threads_0_the_runtime_sends_everything() {
    let server = TestServer::start_with_config("[server]\nsend_threads = 0\n", &[]);
    let bytes = payload(LEN, 13);
    server.write("big", &bytes);
    let (c, data) = start_download(&server);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(send_threads(&server), 0);
    assert!(read_rest(c, data) == bytes);
}
