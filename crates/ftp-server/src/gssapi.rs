//! RFC 2228's GSSAPI mechanism (Kerberos 5), the acceptor side, over the
//! system's GSS-API library (MIT krb5's `libgssapi_krb5.so.2`).
//!
//! The library is loaded at run time with dlopen rather than linked: the
//! binary builds without krb5 headers and runs (FTP and FTPS) on machines
//! without Kerberos; a site that configures a keytab is told at start when
//! the library is missing. Only the few calls an acceptor needs are bound.
//!
//! A security context is not safe for concurrent use, and a session's is
//! used by its control connection (replies) and its data connection
//! (protected transfers) at once, so [`SecurityContext`] keeps it behind a
//! mutex; each call holds it for one wrap or unwrap.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::path::Path;
use std::ptr;
use std::sync::{Arc, Mutex, OnceLock};

/// The library loaded when the configuration names none.
pub const DEFAULT_LIBRARY: &str = "libgssapi_krb5.so.2";

type OmUint32 = u32;
type Handle = *mut c_void;

#[repr(C)]
struct Buffer {
    length: usize,
    value: *mut c_void,
}

impl Buffer {
    fn empty() -> Buffer {
        Buffer {
            length: 0,
            value: ptr::null_mut(),
        }
    }

    /// A buffer the library only reads (its calls take `gss_buffer_t`, not
    /// a const pointer, but never write through an input buffer). Empty:
    /// a null pointer, not the dangling one of an empty slice.
    fn borrowing(bytes: &[u8]) -> Buffer {
        if bytes.is_empty() {
            return Buffer::empty();
        }
        Buffer {
            length: bytes.len(),
            value: bytes.as_ptr() as *mut c_void,
        }
    }
}

#[repr(C)]
struct Oid {
    length: OmUint32,
    elements: *const c_void,
}

#[repr(C)]
struct OidSet {
    count: usize,
    elements: *const Oid,
}

/// Kerberos 5's mechanism, 1.2.840.113554.1.2.2 (RFC 1964), in DER.
const KRB5_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];

#[repr(C)]
struct KeyValue {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct KeyValueSet {
    count: OmUint32,
    elements: *const KeyValue,
}

const GSS_C_ACCEPT: c_int = 2;
const GSS_C_INDEFINITE: OmUint32 = 0xffff_ffff;
const GSS_C_GSS_CODE: c_int = 1;
const GSS_C_MECH_CODE: c_int = 2;
const GSS_S_CONTINUE_NEEDED: OmUint32 = 1;
const GSS_C_QOP_DEFAULT: OmUint32 = 0;
const GSS_C_CONF_FLAG: OmUint32 = 16;
const GSS_C_INTEG_FLAG: OmUint32 = 32;
/// Supplementary status: the token was seen before (a replay).
const GSS_S_DUPLICATE_TOKEN: OmUint32 = 2;

/// The sequence number of an RFC 4121 Wrap token (TOK_ID 05 04), which
/// the token's checksum covers: read after the token verified, it tells
/// the order the client wrapped its tokens in.
fn wrap_token_sequence(token: &[u8]) -> Option<u64> {
    if token.len() < 16 || token[..2] != [0x05, 0x04] {
        return None;
    }
    Some(u64::from_be_bytes(token[8..16].try_into().expect("8 bytes")))
}

/// The calling and routine error bits of a major status (RFC 2744 §3.9.1);
/// the low 16 bits are supplementary information, not errors.
fn is_error(major: OmUint32) -> bool {
    major & 0xffff_0000 != 0
}

type AcquireCredFrom = unsafe extern "C" fn(
    *mut OmUint32,
    Handle,
    OmUint32,
    Handle,
    c_int,
    *const KeyValueSet,
    *mut Handle,
    *mut Handle,
    *mut OmUint32,
) -> OmUint32;
type AcceptSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    *mut Handle,
    Handle,
    *mut Buffer,
    Handle,
    *mut Handle,
    *mut Handle,
    *mut Buffer,
    *mut OmUint32,
    *mut OmUint32,
    *mut Handle,
) -> OmUint32;
type DisplayName = unsafe extern "C" fn(*mut OmUint32, Handle, *mut Buffer, *mut Handle) -> OmUint32;
type ReleaseHandle = unsafe extern "C" fn(*mut OmUint32, *mut Handle) -> OmUint32;
type ReleaseBuffer = unsafe extern "C" fn(*mut OmUint32, *mut Buffer) -> OmUint32;
type DeleteSecContext = unsafe extern "C" fn(*mut OmUint32, *mut Handle, *mut Buffer) -> OmUint32;
type Wrap =
    unsafe extern "C" fn(*mut OmUint32, Handle, c_int, OmUint32, *mut Buffer, *mut c_int, *mut Buffer) -> OmUint32;
type Unwrap =
    unsafe extern "C" fn(*mut OmUint32, Handle, *mut Buffer, *mut Buffer, *mut c_int, *mut OmUint32) -> OmUint32;
type WrapSizeLimit = unsafe extern "C" fn(*mut OmUint32, Handle, c_int, OmUint32, OmUint32, *mut OmUint32) -> OmUint32;
type DisplayStatus =
    unsafe extern "C" fn(*mut OmUint32, OmUint32, c_int, Handle, *mut OmUint32, *mut Buffer) -> OmUint32;

/// The library's entry points. The handle stays open for the life of the
/// process (the pointers below point into it).
struct Api {
    acquire_cred_from: AcquireCredFrom,
    accept_sec_context: AcceptSecContext,
    display_name: DisplayName,
    release_name: ReleaseHandle,
    release_cred: ReleaseHandle,
    release_buffer: ReleaseBuffer,
    delete_sec_context: DeleteSecContext,
    wrap: Wrap,
    unwrap: Unwrap,
    wrap_size_limit: WrapSizeLimit,
    display_status: DisplayStatus,
}

/// Why a GSS-API step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GssError {
    /// The library could not be loaded, or lacks a needed call.
    Load { library: String, reason: String },
    /// A call failed; `message` is the library's own explanation.
    Call { call: &'static str, message: String },
    /// A wrap did not give the confidentiality asked for.
    NoConfidentiality,
}

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GssError::Load { library, reason } => write!(f, "GSS-API library {library}: {reason}"),
            GssError::Call { call, message } => write!(f, "{call}: {message}"),
            GssError::NoConfidentiality => write!(f, "the security context cannot encrypt"),
        }
    }
}

impl std::error::Error for GssError {}

static API: OnceLock<Api> = OnceLock::new();

/// Loads `library` once per process; later calls return the first load
/// (one GSS-API library per process, whatever name is asked for later).
fn api(library: &str) -> Result<&'static Api, GssError> {
    if let Some(api) = API.get() {
        return Ok(api);
    }
    let loaded = load(library)?;
    Ok(API.get_or_init(|| loaded))
}

fn load(library: &str) -> Result<Api, GssError> {
    let load_error = |reason: String| GssError::Load {
        library: library.to_string(),
        reason,
    };
    let name = CString::new(library).map_err(|_| load_error("name holds a NUL byte".into()))?;
    // SAFETY: dlopen with a valid C string; the handle is never closed, so
    // the symbols below stay valid for the life of the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(load_error(dl_error()));
    }
    let symbol = |name: &str| -> Result<*mut c_void, GssError> {
        let c = CString::new(name).expect("static symbol name");
        // SAFETY: a valid handle and C string.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(load_error(format!("no symbol {name}")))
        } else {
            Ok(p)
        }
    };
    // SAFETY (each transmute): the symbol is the GSS-API C function of that
    // name, whose C prototype (RFC 2744, and MIT's gss_acquire_cred_from)
    // the function type above mirrors.
    unsafe {
        Ok(Api {
            acquire_cred_from: std::mem::transmute::<*mut c_void, AcquireCredFrom>(symbol("gss_acquire_cred_from")?),
            accept_sec_context: std::mem::transmute::<*mut c_void, AcceptSecContext>(symbol("gss_accept_sec_context")?),
            display_name: std::mem::transmute::<*mut c_void, DisplayName>(symbol("gss_display_name")?),
            release_name: std::mem::transmute::<*mut c_void, ReleaseHandle>(symbol("gss_release_name")?),
            release_cred: std::mem::transmute::<*mut c_void, ReleaseHandle>(symbol("gss_release_cred")?),
            release_buffer: std::mem::transmute::<*mut c_void, ReleaseBuffer>(symbol("gss_release_buffer")?),
            delete_sec_context: std::mem::transmute::<*mut c_void, DeleteSecContext>(symbol("gss_delete_sec_context")?),
            wrap: std::mem::transmute::<*mut c_void, Wrap>(symbol("gss_wrap")?),
            unwrap: std::mem::transmute::<*mut c_void, Unwrap>(symbol("gss_unwrap")?),
            wrap_size_limit: std::mem::transmute::<*mut c_void, WrapSizeLimit>(symbol("gss_wrap_size_limit")?),
            display_status: std::mem::transmute::<*mut c_void, DisplayStatus>(symbol("gss_display_status")?),
        })
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a C string valid until the next dl
    // call on this thread.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "dlopen failed".into()
    } else {
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

impl Api {
    /// Copies an output buffer out and releases it.
    fn take(&self, buffer: &mut Buffer) -> Vec<u8> {
        let bytes = if buffer.value.is_null() || buffer.length == 0 {
            Vec::new()
        } else {
            // SAFETY: the library filled `length` bytes at `value`.
            unsafe { std::slice::from_raw_parts(buffer.value as *const u8, buffer.length) }.to_vec()
        };
        let mut minor = 0;
        // SAFETY: a buffer the library allocated (or an empty one).
        unsafe { (self.release_buffer)(&mut minor, buffer) };
        bytes
    }

    /// The library's words for a failed call: the major status's, then the
    /// mechanism's (the Kerberos reason: unknown key version, clock skew).
    fn error(&self, call: &'static str, major: OmUint32, minor: OmUint32) -> GssError {
        let mut words = Vec::new();
        for (status, kind) in [(major, GSS_C_GSS_CODE), (minor, GSS_C_MECH_CODE)] {
            if kind == GSS_C_MECH_CODE && status == 0 {
                continue;
            }
            let mut context = 0;
            // Bounded: a library that never says it is done is cut short.
            for _ in 0..8 {
                let mut m = 0;
                let mut text = Buffer::empty();
                // SAFETY: valid out-pointers; a null mechanism OID means the
                // default mechanism.
                let r =
                    unsafe { (self.display_status)(&mut m, status, kind, ptr::null_mut(), &mut context, &mut text) };
                if is_error(r) {
                    break;
                }
                words.push(String::from_utf8_lossy(&self.take(&mut text)).into_owned());
                if context == 0 {
                    break;
                }
            }
        }
        GssError::Call {
            call,
            message: if words.is_empty() {
                format!("major status {major:#x}, minor {minor}")
            } else {
                words.join("; ")
            },
        }
    }
}

/// The server's credentials: every key of its keytab.
pub struct Acceptor {
    api: &'static Api,
    cred: Handle,
}

// SAFETY: a credential handle may be used from any thread; MIT locks it
// internally, and it is only released on drop.
unsafe impl Send for Acceptor {}
unsafe impl Sync for Acceptor {}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor").finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Acquires accepting credentials from `keytab`, loading `library`
    /// first. Any service principal in the keytab is accepted (a client asks
    /// for `ftp@host`, or `host@host` when that fails).
    pub fn from_keytab(library: &str, keytab: &Path) -> Result<Arc<Acceptor>, GssError> {
        let api = api(library)?;
        let path = CString::new(keytab.as_os_str().as_encoded_bytes()).map_err(|_| GssError::Call {
            call: "gss_acquire_cred_from",
            message: "keytab path holds a NUL byte".into(),
        })?;
        let key = CString::new("keytab").expect("static");
        let element = KeyValue {
            key: key.as_ptr(),
            value: path.as_ptr(),
        };
        let store = KeyValueSet {
            count: 1,
            elements: &element,
        };
        let oid = Oid {
            length: KRB5_OID.len() as OmUint32,
            elements: KRB5_OID.as_ptr() as *const c_void,
        };
        let mechs = OidSet {
            count: 1,
            elements: &oid,
        };
        let mut minor = 0;
        let mut cred: Handle = ptr::null_mut();
        // SAFETY: valid pointers for the call's duration; a null desired
        // name means "any name in the keytab". Kerberos 5 only: SPNEGO (and
        // whatever it would negotiate, NTLM with gss-ntlmssp) is refused.
        let major = unsafe {
            (api.acquire_cred_from)(
                &mut minor,
                ptr::null_mut(),
                GSS_C_INDEFINITE,
                &mechs as *const OidSet as Handle,
                GSS_C_ACCEPT,
                &store,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if is_error(major) {
            return Err(api.error("gss_acquire_cred_from", major, minor));
        }
        Ok(Arc::new(Acceptor { api, cred }))
    }

    /// A new exchange for one session's AUTH GSSAPI.
    pub fn negotiation(self: &Arc<Self>) -> Negotiation {
        Negotiation {
            acceptor: Arc::clone(self),
            ctx: ptr::null_mut(),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: the handle this acceptor owns.
        unsafe { (self.api.release_cred)(&mut minor, &mut self.cred) };
    }
}

/// A security context being set up by ADAT rounds.
pub struct Negotiation {
    acceptor: Arc<Acceptor>,
    ctx: Handle,
}

// SAFETY: the context handle is owned by this value alone and used by one
// thread at a time (the call moves it to a blocking thread and back); no
// method reaches it through a shared reference, so sharing is safe too.
unsafe impl Send for Negotiation {}
unsafe impl Sync for Negotiation {}

/// What one ADAT token gave.
pub enum Step {
    /// More tokens are needed: send this one back (335).
    Continue(Negotiation, Vec<u8>),
    /// The context is set up (235); `token` is the last one for the client
    /// (mutual authentication), possibly empty.
    Established { context: SecurityContext, token: Vec<u8> },
}

impl Negotiation {
    /// Feeds one client token. Blocking: the library may read the keytab
    /// and write its replay cache.
    pub fn step(mut self, token: &[u8]) -> Result<Step, GssError> {
        let api = self.acceptor.api;
        let mut minor = 0;
        let mut input = Buffer::borrowing(token);
        let mut output = Buffer::empty();
        let mut client: Handle = ptr::null_mut();
        let mut flags: OmUint32 = 0;
        // SAFETY: valid pointers; null channel bindings accept the client's
        // whatever they are (curl binds the connection's addresses, which a
        // NAT or a proxy changes); the other optional outputs left null.
        let major = unsafe {
            (api.accept_sec_context)(
                &mut minor,
                &mut self.ctx,
                self.acceptor.cred,
                &mut input,
                ptr::null_mut(),
                &mut client,
                ptr::null_mut(),
                &mut output,
                &mut flags,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let reply = api.take(&mut output);
        if is_error(major) {
            release_name(api, &mut client);
            return Err(api.error("gss_accept_sec_context", major, minor));
        }
        if major & GSS_S_CONTINUE_NEEDED != 0 {
            release_name(api, &mut client);
            return Ok(Step::Continue(self, reply));
        }
        if flags & (GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG) != GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG {
            release_name(api, &mut client);
            return Err(GssError::Call {
                call: "gss_accept_sec_context",
                message: "the context offers no integrity or no confidentiality".into(),
            });
        }
        let name = display_name(api, client);
        release_name(api, &mut client);
        let name = name?;
        let ctx = std::mem::replace(&mut self.ctx, ptr::null_mut());
        Ok(Step::Established {
            context: SecurityContext {
                api,
                ctx: Mutex::new(ContextState {
                    handle: ctx,
                    highest_received: None,
                }),
                client: name,
            },
            token: reply,
        })
    }
}

impl Drop for Negotiation {
    fn drop(&mut self) {
        delete_context(self.acceptor.api, &mut self.ctx);
    }
}

fn release_name(api: &Api, name: &mut Handle) {
    if !name.is_null() {
        let mut minor = 0;
        // SAFETY: a name the library returned.
        unsafe { (api.release_name)(&mut minor, name) };
    }
}

fn display_name(api: &Api, name: Handle) -> Result<String, GssError> {
    let mut minor = 0;
    let mut text = Buffer::empty();
    // SAFETY: a valid name handle and out-buffer.
    let major = unsafe { (api.display_name)(&mut minor, name, &mut text, ptr::null_mut()) };
    if is_error(major) {
        return Err(api.error("gss_display_name", major, minor));
    }
    Ok(String::from_utf8_lossy(&api.take(&mut text)).into_owned())
}

fn delete_context(api: &Api, ctx: &mut Handle) {
    if !ctx.is_null() {
        let mut minor = 0;
        // SAFETY: a context this value owns; no output token wanted.
        unsafe { (api.delete_sec_context)(&mut minor, ctx, ptr::null_mut()) };
    }
}

struct ContextState {
    handle: Handle,
    /// The highest sequence number of the client's tokens so far.
    highest_received: Option<u64>,
}

// SAFETY: used only under the mutex of its SecurityContext.
unsafe impl Send for ContextState {}

/// An opened token.
#[derive(Debug)]
pub struct Unwrapped {
    pub message: Vec<u8>,
    /// It was encrypted, not only integrity-protected.
    pub encrypted: bool,
    /// Its sequence number (RFC 4121), in the order the client wrapped it.
    pub sequence: u64,
}

/// An established context: wraps replies and data, unwraps commands and
/// data.
pub struct SecurityContext {
    api: &'static Api,
    ctx: Mutex<ContextState>,
    client: String,
}

impl fmt::Debug for SecurityContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityContext")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl SecurityContext {
    /// The client's principal, as the library prints it (`alice@REALM`).
    pub fn client(&self) -> &str {
        &self.client
    }

    /// Protects `message`: integrity always, and confidentiality (it is
    /// encrypted) when `confidential`.
    pub fn wrap(&self, message: &[u8], confidential: bool) -> Result<Vec<u8>, GssError> {
        let handle = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        let mut minor = 0;
        let mut input = Buffer::borrowing(message);
        let mut output = Buffer::empty();
        let mut conf_state: c_int = 0;
        // SAFETY: a valid context under its lock; valid buffers.
        let major = unsafe {
            (self.api.wrap)(
                &mut minor,
                handle.handle,
                c_int::from(confidential),
                GSS_C_QOP_DEFAULT,
                &mut input,
                &mut conf_state,
                &mut output,
            )
        };
        let token = self.api.take(&mut output);
        if is_error(major) {
            return Err(self.api.error("gss_wrap", major, minor));
        }
        if confidential && conf_state == 0 {
            return Err(GssError::NoConfidentiality);
        }
        Ok(token)
    }

    /// The highest sequence number of the client's tokens opened so far.
    pub fn highest_received(&self) -> Option<u64> {
        self.ctx.lock().unwrap_or_else(|p| p.into_inner()).highest_received
    }

    /// Checks and opens `token`. Only RFC 4121 tokens (the AES enctypes,
    /// every current Kerberos) are taken, so that callers can order them;
    /// a token the library has seen before is refused.
    pub fn unwrap(&self, token: &[u8]) -> Result<Unwrapped, GssError> {
        let Some(sequence) = wrap_token_sequence(token) else {
            return Err(GssError::Call {
                call: "gss_unwrap",
                message: "not an RFC 4121 wrap token (Kerberos with AES is needed)".into(),
            });
        };
        let mut handle = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        let mut minor = 0;
        let mut input = Buffer::borrowing(token);
        let mut output = Buffer::empty();
        let mut conf_state: c_int = 0;
        // SAFETY: a valid context under its lock; valid buffers; the QOP
        // is not wanted.
        let major = unsafe {
            (self.api.unwrap)(
                &mut minor,
                handle.handle,
                &mut input,
                &mut output,
                &mut conf_state,
                ptr::null_mut(),
            )
        };
        let message = self.api.take(&mut output);
        if is_error(major) {
            return Err(self.api.error("gss_unwrap", major, minor));
        }
        if major & GSS_S_DUPLICATE_TOKEN != 0 {
            return Err(GssError::Call {
                call: "gss_unwrap",
                message: "a token seen before (replayed)".into(),
            });
        }
        handle.highest_received = Some(handle.highest_received.map_or(sequence, |h| h.max(sequence)));
        Ok(Unwrapped {
            message,
            encrypted: conf_state != 0,
            sequence,
        })
    }

    /// The longest message whose wrapped token fits in `max_token` bytes.
    pub fn max_message(&self, confidential: bool, max_token: u32) -> Result<u32, GssError> {
        let handle = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        let mut minor = 0;
        let mut max_input = 0;
        // SAFETY: a valid context under its lock.
        let major = unsafe {
            (self.api.wrap_size_limit)(
                &mut minor,
                handle.handle,
                c_int::from(confidential),
                GSS_C_QOP_DEFAULT,
                max_token,
                &mut max_input,
            )
        };
        if is_error(major) {
            return Err(self.api.error("gss_wrap_size_limit", major, minor));
        }
        Ok(max_input)
    }
}

impl Drop for SecurityContext {
    fn drop(&mut self) {
        let state = self.ctx.get_mut().unwrap_or_else(|p| p.into_inner());
        delete_context(self.api, &mut state.handle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_load_error() {
        // Not `api()`: that would cache the first library loaded.
        let Err(e) = load("libferroftp-no-such-gssapi.so.9") else {
            panic!("loaded a library that does not exist");
        };
        assert!(matches!(e, GssError::Load { .. }), "{e}");
    }

    #[test]
    fn wrap_token_sequence_is_read_from_rfc_4121_headers_only() {
        let mut token = vec![0x05, 0x04, 0x02, 0xff, 0, 0, 0, 0];
        token.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        token.extend_from_slice(b"payload");
        assert_eq!(wrap_token_sequence(&token), Some(0x0102_0304_0506_0708));
        assert_eq!(wrap_token_sequence(&token[..15]), None, "short");
        token[1] = 0x05; // a MIC token, not a wrap token
        assert_eq!(wrap_token_sequence(&token), None);
        assert_eq!(
            wrap_token_sequence(&[0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None,
            "RFC 1964"
        );
    }

    #[test]
    fn supplementary_bits_are_not_errors() {
        assert!(!is_error(0)); // GSS_S_COMPLETE
        assert!(!is_error(GSS_S_CONTINUE_NEEDED));
        assert!(!is_error(0x10)); // GSS_S_GAP_TOKEN
        assert!(is_error(0x000d_0000)); // GSS_S_FAILURE
        assert!(is_error(0x0100_0000)); // a calling error
    }
}
