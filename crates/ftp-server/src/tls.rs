//! FTPS (RFC 4217) with rustls: certificates, per-session TLS configs that
//! bind data connections to their control session, and the stream types
//! that carry either plain TCP or TLS.
//!
//! Data-connection binding: each control session gets its own clone of the
//! server's rustls config with a session cache and ticket keys of its own.
//! A data connection is accepted with that same config (an upload's with a
//! twin that differs only in sending no TLS 1.3 tickets: see
//! `SessionTls`), so a handshake that *resumes* can only have resumed
//! this control session (or one of its own earlier data connections). A
//! data connection from anyone else cannot resume and is refused with 522
//! unless the site relaxes the rule for clients that never resume (Python's
//! ftplib).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::crypto::ring as provider;
use rustls::server::ServerSessionMemoryCache;
use rustls::{HandshakeKind, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::gss_framing::GssStream;
use crate::ktls::KernelTls;
use crate::tls_socket::TlsSocket;

/// A rustls stream over TCP.
pub(crate) type TlsConn = TlsStream<TlsSocket>;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files, re-read on [`TlsProvider::reload`] (SIGHUP).
    Files { cert: PathBuf, key: PathBuf },
    /// Generated at start for these names (its fingerprint is printed).
    SelfSigned { names: Vec<String> },
}

/// The rules a site sets for TLS.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// Refuse USER before AUTH TLS (534) and any login without TLS.
    pub require_for_login: bool,
    /// Refuse data transfers without PROT P (521).
    pub require_for_data: bool,
    /// A PROT P data connection must resume the control connection's TLS
    /// session (522 otherwise).
    pub require_session_reuse: bool,
    /// Allow CCC (clear command channel); refused with 533 by default.
    pub allow_ccc: bool,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy {
            require_for_login: false,
            require_for_data: false,
            require_session_reuse: true,
            allow_ccc: false,
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug)]
pub enum TlsError {
    Read(PathBuf, io::Error),
    NoCertificate(PathBuf),
    NoKey(PathBuf),
    Pem(PathBuf, String),
    Rustls(rustls::Error),
    Generate(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read(p, e) => write!(f, "{}: {e}", p.display()),
            TlsError::NoCertificate(p) => write!(f, "{}: no certificate found", p.display()),
            TlsError::NoKey(p) => write!(f, "{}: no private key found", p.display()),
            TlsError::Pem(p, e) => write!(f, "{}: {e}", p.display()),
            TlsError::Rustls(e) => write!(f, "TLS configuration: {e}"),
            TlsError::Generate(e) => write!(f, "self-signed certificate: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The server's TLS configuration, replaceable at run time.
pub struct TlsProvider {
    source: CertSource,
    client_certificates: bool,
    current: RwLock<Arc<ServerConfig>>,
    fingerprint: RwLock<String>,
}

impl fmt::Debug for TlsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsProvider")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TlsProvider {
    /// `client_certificates`: ask every client for a certificate (which it
    /// may decline), so that users whose entry lists its fingerprint log in
    /// without a password.
    pub fn new(source: CertSource, client_certificates: bool) -> Result<TlsProvider, TlsError> {
        let (config, fingerprint) = build(&source, client_certificates)?;
        Ok(TlsProvider {
            source,
            client_certificates,
            current: RwLock::new(Arc::new(config)),
            fingerprint: RwLock::new(fingerprint),
        })
    }

    /// The SHA-256 fingerprint of the certificate, `AA:BB:...`.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.read().expect("fingerprint lock").clone()
    }

    /// Re-reads the certificate files. New sessions use the new
    /// certificate; sessions already in TLS keep theirs. A self-signed
    /// certificate is kept (regenerating would change it under clients).
    pub fn reload(&self) -> Result<(), TlsError> {
        if matches!(self.source, CertSource::SelfSigned { .. }) {
            return Ok(());
        }
        let (config, fingerprint) = build(&self.source, self.client_certificates)?;
        *self.current.write().expect("config lock") = Arc::new(config);
        *self.fingerprint.write().expect("fingerprint lock") = fingerprint;
        Ok(())
    }

    /// The configs of one control session and its data connections, with
    /// a session cache and ticket keys of their own (see the module comment).
    pub(crate) fn session_config(&self) -> io::Result<Arc<SessionTls>> {
        let base = Arc::clone(&self.current.read().expect("config lock"));
        let mut config = (*base).clone();
        config.session_storage = ServerSessionMemoryCache::new(64);
        config.ticketer = provider::Ticketer::new().map_err(io::Error::other)?;
        // The same cache and ticket keys (both are shared `Arc`s), so an
        // upload's data connection resumes the control session all the same.
        let mut upload = config.clone();
        upload.send_tls13_tickets = 0;
        Ok(Arc::new(SessionTls {
            control: Arc::new(config),
            upload_data: Arc::new(upload),
        }))
    }
}

/// The rustls configs of one control session.
pub(crate) struct SessionTls {
    /// The control connection, and data connections that carry data to the
    /// client (RETR, listings): TLS 1.3 tickets are sent after the
    /// handshake, and the client reads them along with the data.
    pub control: Arc<ServerConfig>,
    /// Data connections of uploads: no TLS 1.3 tickets. An uploading
    /// client never reads its data connection, so tickets sent there sit
    /// unread in its socket; closing a socket with unread input makes
    /// Linux send a reset and drop whatever the client had not yet sent,
    /// so the tail of the upload was lost (lftp over GnuTLS: 426 on about
    /// half its uploads of 150 KB whenever the server read slower than the
    /// client wrote). Clients that resume with the control connection's
    /// ticket need no more; curl 7.88, which uses a ticket once, cannot
    /// resume a transfer after an upload (README, "Known client quirk").
    pub upload_data: Arc<ServerConfig>,
}

impl SessionTls {
    /// The config for a data connection; `upload`: the client only sends.
    pub(crate) fn data(&self, upload: bool) -> &Arc<ServerConfig> {
        if upload {
            &self.upload_data
        } else {
            &self.control
        }
    }
}

fn build(source: &CertSource, client_certificates: bool) -> Result<(ServerConfig, String), TlsError> {
    let (certs, key) = match source {
        CertSource::Files { cert, key } => (load_certs(cert)?, load_key(key)?),
        CertSource::SelfSigned { names } => {
            let generated =
                rcgen::generate_simple_self_signed(names.clone()).map_err(|e| TlsError::Generate(e.to_string()))?;
            let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der())
                .map_err(|e| TlsError::Generate(e.to_string()))?;
            (vec![generated.cert.der().clone()], key)
        }
    };
    let fingerprint = fingerprint_of(certs[0].as_ref());
    let crypto = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: preferred_cipher_suites(),
        ..provider::default_provider()
    });
    let builder = ServerConfig::builder_with_provider(Arc::clone(&crypto))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?;
    let builder = if client_certificates {
        builder.with_client_cert_verifier(Arc::new(PinnedClientCertificates { crypto }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(certs, key).map_err(TlsError::Rustls)?;
    // The server's order wins (see `preferred_cipher_suites`).
    config.ignore_client_order = true;
    // ALPACA defence: a client that offers ALPN must offer "ftp"; rustls
    // fails the handshake when the lists do not meet. Clients that offer no
    // ALPN at all (most FTP clients) are unaffected.
    config.alpn_protocols = vec![b"ftp".to_vec()];
    // Every data connection of a TLS 1.3 session resumes with a ticket of
    // its own; send a few so parallel transfers (lftp pget) each have one.
    config.send_tls13_tickets = 4;
    // A data connection may hand its keys to the kernel (`ktls`, where
    // `tls.kernel_offload` allows it); nothing else extracts them.
    config.enable_secret_extraction = true;
    Ok((config, fingerprint))
}

/// rustls's suites with AES-128-GCM first, as Mozilla's recommended
/// server configurations order them. OpenSSL clients list AES-256-GCM
/// first; AES-128 has 10 rounds to AES-256's 14, so a transfer costs both
/// ends about a third less encryption for a margin no attack comes near.
fn preferred_cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// The SHA-256 fingerprint of a DER certificate, `AA:BB:...`.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Client certificates for certificate login: optional, and trusted by
/// fingerprint, not by a chain. The handshake proves the client holds the
/// certificate's private key (its signature is checked here); whether that
/// certificate logs anyone in is decided at USER, against the fingerprints
/// in the user's entry. So any certificate is accepted at the TLS layer,
/// and a client without one simply logs in with a password.
#[derive(Debug)]
struct PinnedClientCertificates {
    crypto: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for PinnedClientCertificates {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.crypto.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.crypto.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.crypto.signature_verification_algorithms.supported_schemes()
    }
}

/// The fingerprint of the certificate the client presented on this
/// connection, if it is TLS and the client sent one.
pub(crate) fn peer_fingerprint(stream: &MaybeTls) -> Option<String> {
    let MaybeTls::Tls(tls) = stream else { return None };
    let certs = tls.get_ref().1.peer_certificates()?;
    certs.first().map(|c| fingerprint_of(c.as_ref()))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::Read(path.to_owned(), e))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(path.to_owned(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::Read(path.to_owned(), e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoKey(path.to_owned()))
}

/// Runs the server side of a TLS handshake on `tcp`.
pub(crate) async fn accept(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<TlsConn> {
    TlsAcceptor::from(config).accept(TlsSocket::new(tcp)).await
}

/// [`accept`] for a connection whose receive direction may go to kernel
/// TLS: the handshake is read a record at a time, so nothing after it has
/// left the socket when it returns (see `tls_socket`). The socket stays in
/// that mode until [`TlsSocket::whole_reads`].
pub(crate) async fn accept_record_by_record(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<TlsConn> {
    TlsAcceptor::from(config).accept(TlsSocket::record_by_record(tcp)).await
}

/// True when the handshake resumed an earlier session (of this control
/// session, since the config's caches are private to it).
pub(crate) fn resumed(stream: &TlsConn) -> bool {
    stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed)
}

/// A connection that is plain TCP or TLS over TCP.
pub(crate) enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<TlsConn>),
    /// A data connection under kernel TLS (`ktls`): a download's, whose
    /// sends the kernel encrypts, or an upload's, which it also decrypts.
    Kernel(KernelTls),
    /// A data connection under GSSAPI protection (PROT S or P after AUTH
    /// GSSAPI): RFC 2228's wrapped blocks.
    Gss(Box<GssStream>),
    /// Only while the control connection changes between plain and TLS.
    Detached,
}

impl MaybeTls {
    /// The TCP stream when no TLS is in the way (for sendfile).
    pub fn as_plain(&self) -> Option<&TcpStream> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            _ => None,
        }
    }

    /// The socket sendfile can write to: plain TCP, or TCP under kernel
    /// TLS, which encrypts what it is given.
    pub fn sendfile_target(&self) -> Option<&TcpStream> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Kernel(k) => Some(k.tcp()),
            _ => None,
        }
    }

    /// The TCP stream underneath, with or without TLS (for socket options).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            MaybeTls::Plain(s) => Some(s),
            MaybeTls::Tls(s) => Some(s.get_ref().0.tcp()),
            MaybeTls::Kernel(k) => Some(k.tcp()),
            MaybeTls::Gss(g) => Some(g.tcp()),
            MaybeTls::Detached => None,
        }
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Kernel(k) => Pin::new(k).poll_read(cx, buf),
            MaybeTls::Gss(g) => Pin::new(g.as_mut()).poll_read(cx, buf),
            MaybeTls::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Kernel(k) => Pin::new(k).poll_write(cx, buf),
            MaybeTls::Gss(g) => Pin::new(g.as_mut()).poll_write(cx, buf),
            MaybeTls::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Kernel(k) => Pin::new(k).poll_flush(cx),
            MaybeTls::Gss(g) => Pin::new(g.as_mut()).poll_flush(cx),
            MaybeTls::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Kernel(k) => Pin::new(k).poll_shutdown(cx),
            MaybeTls::Gss(g) => Pin::new(g.as_mut()).poll_shutdown(cx),
            MaybeTls::Detached => Poll::Ready(Ok(())),
        }
    }
}

fn detached() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection is changing between plain and TLS",
    )
}
