//! RFC 2228 with Kerberos 5 (AUTH GSSAPI): a real MIT KDC started for
//! each test in its own realm, tickets from `kinit`, and a client written
//! against Python's `gssapi` binding of the same library that speaks the
//! RFC's framing byte for byte: ADAT rounds (334, 235), MIC, CONF and ENC
//! commands answered 631, 633 and 632, login by principal (232), and
//! protected data connections (PROT S and P blocks, the empty last block).
//!
//! Not curl: curl 7.88's `--krb` keeps the CR of each reply line and then
//! rejects the base64 after `ADAT=` (and in every 63x reply) as malformed,
//! against any server that ends lines with CRLF as RFC 959 says; curl 8.17
//! dropped Kerberos FTP.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, TestServer};
use crate::replies_util::toml_str;
use crate::safety_util::{server_with_users, PASSWORD};

const REALM: &str = "FERRO.TEST";
/// curl, lftp and the client below ask for `ftp@<host as typed>`; with
/// canonicalization off that is `ftp/127.0.0.1`.
const SERVICE: &str = "ftp/127.0.0.1";

/// A throwaway Kerberos realm: a KDC on a loopback port, principals
/// `alice` and `bob` (password `krbpw`) and the FTP service's keytab.
struct Realm {
    dir: tempfile::TempDir,
    kdc: Child,
}

impl Realm {
    fn start() -> Realm {
        let dir = tempfile::tempdir().expect("tempdir");
        // krb5kdc takes no port 0: a port the OS just gave out is as close
        // as it gets (TCP only; clients are told to use it).
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path();
        std::fs::write(
            d.join("krb5.conf"),
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n \
                 dns_canonicalize_hostname = false\n rdns = false\n udp_preference_limit = 1\n\
                 [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("kdc.conf"),
            format!(
                "[kdcdefaults]\n kdc_listen = \"\"\n kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n {REALM} = {{\n  database_name = {db}\n  key_stash_file = {stash}\n  acl_file = {acl}\n }}\n\
                 [logging]\n kdc = FILE:{log}\n",
                db = d.join("principal").display(),
                stash = d.join("stash").display(),
                acl = d.join("kadm5.acl").display(),
                log = d.join("kdc.log").display(),
            ),
        )
        .unwrap();
        let env = |cmd: &mut Command| {
            cmd.env("KRB5_CONFIG", d.join("krb5.conf"))
                .env("KRB5_KDC_PROFILE", d.join("kdc.conf"));
        };
        let run = |program: &str, args: &[&str]| {
            let mut cmd = Command::new(sbin(program));
            cmd.args(args);
            env(&mut cmd);
            let (ok, _, err) = common::run(&mut cmd, Duration::from_secs(60));
            assert!(
                ok,
                "{program} {args:?}: {err} (scripts/test installs krb5-kdc and krb5-admin-server)"
            );
        };
        run("kdb5_util", &["create", "-s", "-r", REALM, "-P", "master-password"]);
        for user in ["alice", "bob"] {
            run("kadmin.local", &["-q", &format!("addprinc -pw krbpw {user}")]);
        }
        run("kadmin.local", &["-q", &format!("addprinc -randkey {SERVICE}")]);
        let keytab = d.join("ftp.keytab");
        run(
            "kadmin.local",
            &["-q", &format!("ktadd -k {} {SERVICE}", keytab.display())],
        );
        let mut cmd = Command::new(sbin("krb5kdc"));
        cmd.arg("-n").stdout(Stdio::null()).stderr(Stdio::null());
        env(&mut cmd);
        let kdc = cmd.spawn().expect("krb5kdc (scripts/test installs krb5-kdc)");
        let realm = Realm { dir, kdc };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the KDC did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        realm
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A ticket cache holding `user`'s initial ticket.
    fn kinit(&self, user: &str) -> PathBuf {
        let cache = self.path(&format!("cc-{user}"));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("echo krbpw | kinit {user}@{REALM}")])
            .env("KRB5_CONFIG", self.path("krb5.conf"))
            .env("KRB5CCNAME", format!("FILE:{}", cache.display()));
        let (ok, _, err) = common::run(&mut cmd, Duration::from_secs(30));
        assert!(ok, "kinit {user}: {err}");
        cache
    }

    /// The `[gssapi]` section for this realm's keytab.
    fn server_toml(&self) -> String {
        format!("[gssapi]\nkeytab = {}\n", toml_str(&self.path("ftp.keytab")))
    }
}

impl Drop for Realm {
    fn drop(&mut self) {
        let _ = self.kdc.kill();
        let _ = self.kdc.wait();
    }
}

/// The KDC's tools live in /usr/sbin, which a non-root PATH may lack.
fn sbin(program: &str) -> PathBuf {
    let full = Path::new("/usr/sbin").join(program);
    if full.exists() {
        full
    } else {
        PathBuf::from(program)
    }
}

/// The RFC 2228 client: `Ctl(port)` connects; `auth()` runs AUTH GSSAPI
/// and ADAT; `cmd(line, level)` sends a command plain or protected ('MIC',
/// 'CONF', 'ENC') and returns (outer code, inner final code, inner lines,
/// encrypted); `retr`/`stor` move data in protected blocks.
const CLIENT: &str = r#"
import base64, gssapi, socket, struct, sys

class Ctl:
    def __init__(self, port):
        self.port = port
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=20)
        self.f = self.sock.makefile('rb')
        self.ctx = None
        assert self.plain_reply()[0] == 220

    def raw_line(self):
        line = self.f.readline()
        assert line.endswith(b'\r\n'), line
        return line[:-2].decode()

    def plain_reply(self):
        lines = [self.raw_line()]
        while not (lines[-1][:3].isdigit() and lines[-1][3:4] == ' ' and lines[-1][:3] == lines[0][:3]):
            lines.append(self.raw_line())
        return int(lines[0][:3]), lines

    def reply(self):
        """(outer code, inner code, inner lines, every line encrypted)"""
        first = self.raw_line()
        if first[:3] not in ('631', '632', '633'):
            lines = [first]
            while not (lines[-1][:3] == first[:3] and lines[-1][3:4] == ' '):
                lines.append(self.raw_line())
            return int(first[:3]), int(first[:3]), lines, False
        outer, inner, encrypted, line = first[:3], [], True, first
        while True:
            assert line[:3] == outer, (outer, line)
            msg = self.ctx.unwrap(base64.b64decode(line[4:]))
            encrypted = encrypted and msg.encrypted
            inner.append(msg.message.decode())
            if line[3] == ' ':
                break
            line = self.raw_line()
        last = inner[-1]
        assert last[:3].isdigit() and last[3] == ' ', inner
        return int(outer), int(last[:3]), inner, encrypted

    def send(self, line):
        self.sock.sendall(line.encode() + b'\r\n')

    def protected(self, line, level):
        token = self.ctx.wrap((line + '\r\n').encode(), level != 'MIC').message
        return '%s %s' % (level, base64.b64encode(token).decode())

    def cmd(self, line, level=None):
        self.send(self.protected(line, level) if level else line)
        return self.reply()

    def expect(self, line, code, level='ENC'):
        outer, inner, lines, encrypted = self.cmd(line, level)
        want_outer = {'MIC': 631, 'ENC': 632, 'CONF': 633, None: inner}[level]
        # 125 or 150 before a transfer: the connection may be open already.
        codes = (125, 150) if code == 150 else (code,)
        assert outer == want_outer and inner in codes, (line, level, outer, inner, lines)
        if level in ('ENC', 'CONF'):
            assert encrypted, (line, 'reply not encrypted')
        return lines

    def auth(self):
        self.send('AUTH GSSAPI')
        code, lines = self.plain_reply()
        assert code == 334, lines
        name = gssapi.Name('ftp@127.0.0.1', gssapi.NameType.hostbased_service)
        self.ctx = gssapi.SecurityContext(name=name, usage='initiate', flags=
            gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.integrity |
            gssapi.RequirementFlag.confidentiality)
        token = self.ctx.step()
        while True:
            self.send('ADAT ' + base64.b64encode(token).decode())
            code, lines = self.plain_reply()
            assert code in (235, 335), lines
            text = lines[-1][4:]
            token = base64.b64decode(text[5:]) if text.startswith('ADAT=') else b''
            if code == 235:
                break
        if not self.ctx.complete:
            self.ctx.step(token)
        assert self.ctx.complete

    def epsv(self, level='ENC'):
        lines = self.expect('EPSV', 229, level)
        port = int(lines[-1].split('|')[3])
        return socket.create_connection(('127.0.0.1', port), timeout=20)

    def read_blocks(self, data, encrypted):
        out, f = b'', data.makefile('rb')
        while True:
            head = f.read(4)
            assert len(head) == 4, 'connection closed before the last (empty) block'
            token = f.read(struct.unpack('>I', head)[0])
            msg = self.ctx.unwrap(token)
            assert msg.encrypted == encrypted, 'block protection'
            if not msg.message:
                break
            out += msg.message
        assert f.read(1) == b'', 'bytes after the last block'
        return out

    def fetch(self, line, encrypted, level='ENC'):
        data = self.epsv(level)
        self.expect(line, 150, level)
        got = self.read_blocks(data, encrypted)
        data.close()
        self.expect_final(226, level)
        return got

    def retr(self, path, encrypted, level='ENC'):
        return self.fetch('RETR ' + path, encrypted, level)

    def expect_final(self, code, level='ENC'):
        outer, inner, lines, _ = self.reply()
        assert inner == code, lines

    def stor(self, path, payload, encrypted, level='ENC', block=1000, end_block=True, final=226, first=None):
        """Uploads in blocks; `first`: a token sent ahead of them (a replay).
        Keeps the tokens sent in self.sent."""
        data = self.epsv(level)
        self.expect('STOR ' + path, 150, level)
        blocks = [payload[i:i + block] for i in range(0, len(payload), block)]
        self.sent = []
        try:
            if first is not None:
                data.sendall(struct.pack('>I', len(first)) + first)
            for message in blocks + ([b''] if end_block else []):
                token = self.ctx.wrap(message, encrypted).message
                self.sent.append(token)
                data.sendall(struct.pack('>I', len(token)) + token)
        except (BrokenPipeError, ConnectionResetError):
            assert final != 226, 'the server cut a good upload short'
        data.close()
        self.expect_final(final, level)
"#;

/// Runs `script` (after [`CLIENT`]) against `server` with Debian's
/// python3, which has the `gssapi` module (python3-gssapi), holding
/// `user`'s tickets; the script ends by printing OK.
fn run_client(realm: &Realm, user: &str, server: &TestServer, script: &str) {
    let cache = realm.kinit(user);
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg("-c")
        .arg(format!("{CLIENT}\n{script}"))
        .arg(server.port().to_string())
        .env("KRB5_CONFIG", realm.path("krb5.conf"))
        .env("KRB5CCNAME", format!("FILE:{}", cache.display()));
    let (ok, out, err) = common::run(&mut cmd, Duration::from_secs(60));
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(ok, "client failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("OK"), "{out}");
}

fn server(realm: &Realm, extra: &str) -> (TestServer, tempfile::TempDir) {
    server_with_users(
        &[("alice", &["--kerberos-principal", "alice@FERRO.TEST"]), ("carol", &[])],
        &format!("{}{extra}", realm.server_toml()),
    )
}

/// The whole exchange: AUTH GSSAPI 334, ADAT 235 with the mutual
/// authentication token, USER logged in by principal (232), replies to
/// ENC, MIC and CONF as 632, 631 and 633 (multi-line ones line by line),
/// a plain command refused (533), and files both ways under PROT P and
/// PROT S.
#[test]
fn kerberos_login_protected_commands_and_data() {
    let realm = Realm::start();
    let (server, _users) = server(&realm, "");
    let secret: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    server.write("secret.bin", &secret);
    server.write("large.bin", &vec![0x5a; 16 << 20]);
    run_client(
        &realm,
        "alice",
        &server,
        r#"
c = Ctl(int(sys.argv[1]))
c.auth()
c.expect('NOOP', 533, None)
c.expect('USER alice', 232, 'ENC')
assert c.expect('PWD', 257, 'MIC')[0].startswith('257 "/"')
c.expect('TYPE I', 200, 'CONF')
feat = c.expect('FEAT', 211, 'MIC')
assert ' AUTH GSSAPI' in feat and ' PBSZ' in feat and ' PROT' in feat, feat
c.expect('PROT P', 503)
assert c.expect('PBSZ 4000000', 200)[0] == '200 PBSZ=1048576'
c.expect('PBSZ 65536', 200)
c.expect('PROT P', 200)
want = bytes(i * 7 % 251 for i in range(300000))
assert c.retr('secret.bin', True) == want
payload = bytes(range(256)) * 1000
c.stor('up-private.bin', payload, True, block=65000)
names = c.fetch('NLST', True).decode().split('\r\n')
assert 'secret.bin' in names and 'up-private.bin' in names, names
c.stor('empty.bin', b'', True)
assert c.retr('empty.bin', True) == b''
c.expect('PROT S', 200, 'MIC')
assert c.retr('secret.bin', False, 'MIC') == want
c.stor('up-safe.bin', payload, False, 'MIC')
# A block of an earlier upload slipped into a new one: 426, not stored.
c.stor('replayed.bin', payload, False, 'MIC', first=c.sent[3], final=426)
c.expect('SIZE replayed.bin', 550, 'MIC')
# Without the last (empty) block the upload is cut short: 426, not stored.
c.stor('cut.bin', payload, False, 'MIC', end_block=False, final=426)
# A block larger than the agreed buffer (64 KiB) ends the transfer too.
c.stor('big.bin', payload, False, 'MIC', block=200000, final=426)
c.expect('SIZE cut.bin', 550, 'MIC')
c.expect('SIZE big.bin', 550, 'MIC')
# A transfer's replies keep the level of the command that started it:
# the 226 of an ENC RETR is 632 even after a MIC NOOP answered meanwhile.
c.expect('PROT P', 200, 'ENC')
data = c.epsv()
c.expect('RETR large.bin', 150)
c.expect('NOOP', 200, 'MIC')
assert c.read_blocks(data, True) == b'\x5a' * (16 << 20)
data.close()
outer, inner, lines, encrypted = c.reply()
assert (outer, inner, encrypted) == (632, 226, True), (outer, lines)
c.expect('QUIT', 221)
print('OK')
"#,
    );
    let payload: Vec<u8> = (0..1000).flat_map(|_| 0..=255u8).collect();
    assert_eq!(server.read("up-private.bin"), payload);
    assert_eq!(server.read("up-safe.bin"), payload);
}

/// Bad security data and bad protected commands get RFC 2228's codes and
/// change nothing: ADAT before AUTH 503, not base64 501, a token the
/// keytab cannot accept 535 (and the exchange starts over); after the
/// exchange, a token that does not verify 535, ENC whose token is not
/// encrypted 535, a protected command inside another 503; a principal no
/// entry lists (bob) logs in by password only; PBSZ below 512 is 501.
#[test]
fn kerberos_refusals() {
    let realm = Realm::start();
    let (server, _users) = server(&realm, "");
    run_client(
        &realm,
        "bob",
        &server,
        &format!(
            r#"
c = Ctl(int(sys.argv[1]))
c.send('ADAT AAAA'); assert c.plain_reply()[0] == 503
c.send('AUTH GSSAPI'); assert c.plain_reply()[0] == 334
c.send('ADAT %%%'); assert c.plain_reply()[0] == 501
c.send('ADAT ' + base64.b64encode(b'not a kerberos token').decode()); assert c.plain_reply()[0] == 535
c.send('ADAT AAAA'); assert c.plain_reply()[0] == 503
c.auth()
c.send('ENC ' + base64.b64encode(b'forged').decode()); assert c.plain_reply()[0] == 535
token = c.ctx.wrap(b'NOOP\r\n', False).message
c.send('ENC ' + base64.b64encode(token).decode()); assert c.plain_reply()[0] == 535
c.send('CONF ' + base64.b64encode(c.ctx.wrap(b'NOOP\r\n', False).message).decode()); assert c.plain_reply()[0] == 535
c.expect(c.protected('NOOP', 'MIC'), 503, 'ENC')
# The same protected line twice: the second is a replay.
line = c.protected('NOOP', 'ENC')
c.send(line); assert c.reply()[:2] == (632, 200)
c.send(line); assert c.plain_reply()[0] == 535
# An encrypted token under MIC (an ENC rewritten on the way): refused.
c.send('MIC ' + base64.b64encode(c.ctx.wrap(b'NOOP\r\n', True).message).decode()); assert c.plain_reply()[0] == 535
# MIT's clients wrap the command with its NUL and no line end.
c.send('ENC ' + base64.b64encode(c.ctx.wrap(b'NOOP\x00', True).message).decode()); assert c.reply()[:2] == (632, 200)
c.expect('USER bob', 331, 'ENC')
c.expect('PASS wrong', 530, 'ENC')
c.expect('USER alice', 331, 'ENC')
c.expect('USER carol', 331, 'ENC')
c.expect('PASS {PASSWORD}', 230, 'ENC')
c.expect('PBSZ 100', 501, 'MIC')
c.expect('PROT S', 503, 'MIC')
c.expect('AUTH GSSAPI', 503, 'MIC')
c.expect('CCC', 533, 'MIC')
c.expect('QUIT', 221, 'MIC')
print('OK')
"#
        ),
    );
}

/// A server without a keytab answers AUTH GSSAPI 504, and MIC, CONF and
/// ENC 503 as before any security exchange.
#[test]
fn auth_gssapi_without_a_keytab_504() {
    let server = TestServer::start(&[]);
    let mut c = server.client();
    c.expect("AUTH GSSAPI", 504);
    c.expect("ADAT AAAA", 503);
    c.expect("MIC AAAA", 503);
}

/// A keytab the server cannot read stops the start, with the library's
/// reason, rather than failing the first client's AUTH.
#[test]
fn an_unreadable_keytab_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let keytab = dir.path().join("missing.keytab");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, format!("[gssapi]\nkeytab = {}\n", toml_str(&keytab))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferroftp"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config);
    let (ok, _, err) = common::run(&mut cmd, Duration::from_secs(30));
    assert!(!ok, "started with a missing keytab");
    assert!(err.contains("gssapi keytab"), "{err}");
}

/// With `require_protected_commands = false`, plain commands still run
/// after the exchange (answered plain), beside protected ones, and CCC is
/// accepted.
#[test]
fn plain_commands_when_the_site_allows_them() {
    let realm = Realm::start();
    let (server, _users) = server(&realm, "require_protected_commands = false\n");
    run_client(
        &realm,
        "alice",
        &server,
        &format!(
            r#"
c = Ctl(int(sys.argv[1]))
c.auth()
c.expect('NOOP', 200, None)
c.expect('NOOP', 200, 'ENC')
c.expect('USER carol', 331, None)
c.expect('PASS {PASSWORD}', 230, 'ENC')
c.expect('CCC', 200, 'MIC')
c.expect('PWD', 257, None)
print('OK')
"#
        ),
    );
}

/// A site's TLS policy holds under Kerberos too: `require_for_login`
/// wants USER and PASS encrypted (ENC or CONF, not MIC), and
/// `require_for_data` wants PROT P (PROT S only signs). FEAT lists both
/// mechanisms, one AUTH line each.
#[test]
fn tls_policies_need_encryption_under_kerberos() {
    let realm = Realm::start();
    let (server, _users) = server(
        &realm,
        "[tls]\nself_signed = true\nrequire_for_login = true\nrequire_for_data = true\n",
    );
    server.write("f.txt", b"policy\n");
    run_client(
        &realm,
        "alice",
        &server,
        &format!(
            r#"
c = Ctl(int(sys.argv[1]))
feat = c.expect('FEAT', 211, None)
assert ' AUTH TLS' in feat and ' AUTH GSSAPI' in feat, feat
c.auth()
c.expect('USER carol', 534, 'MIC')
c.expect('USER carol', 331, 'ENC')
c.expect('PASS {PASSWORD}', 230, 'ENC')
c.expect('TYPE I', 200)
c.expect('PBSZ 65536', 200)
c.expect('PROT C', 521)
c.expect('PROT S', 200)
data = c.epsv()
c.expect('RETR f.txt', 521)
data.close()
c.expect('PROT P', 200)
assert c.retr('f.txt', True) == b'policy\n'
print('OK')
"#
        ),
    );
}
