use crate::common::TestServer;

#[test]
fn greeting_login_and_quit() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    assert_eq!(c.greeting.code, 220);
    c.login("user", "12345");
    c.expect("QUIT", 221);
    assert!(c.is_closed());
}
