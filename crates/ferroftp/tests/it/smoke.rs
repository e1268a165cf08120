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

/// The scheduling policy of every thread of the server process (field 41
/// of /proc/PID/task/TID/stat: 0 SCHED_OTHER, 3 SCHED_BATCH).
fn thread_policies(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the server's threads");
    tasks
        .map(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
            // The command name may hold spaces and parentheses: count
            // from the last ')', after which field 3 (state) comes first.
            let after_name = &stat[stat.rfind(')').unwrap() + 1..];
            after_name.split_whitespace().nth(41 - 3).unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn server_threads_run_under_the_configured_cpu_scheduling_policy() {
    for (toml, want) in [("", 3), ("[server]\ncpu_scheduling = \"normal\"\n", 0)] {
        let server = TestServer::start_with_config(toml, &[]);
        // A login and a listing make the runtime start its workers and a
        // blocking thread, which must inherit the policy too.
        let mut c = server.login();
        let (_, end) = c.fetch("LIST");
        assert_eq!(end.code, 226);
        let policies = thread_policies(server.pid());
        assert!(policies.len() >= 2, "threads: {policies:?}");
        assert!(
            policies.iter().all(|&p| p == want),
            "config {toml:?}: policies {policies:?}"
        );
    }
}
