//! object_store errors to storage error kinds: the one place where a
//! store's failure gets its reply code.
//!
//! | store says | kind | reply |
//! |---|---|---|
//! | 404 / no such key | `NotFound` | 550 |
//! | 412, 409, 304 on a conditional write (already exists) | `AlreadyExists` | 550 |
//! | 416 (range beyond the end) | `InvalidOffset` | 550 |
//! | 429, 5xx, `SlowDown`, `InternalError`, connect or request time-out, connection reset, a request that got no response, our own deadline | `TemporarilyUnavailable` | 450 |
//! | operation not supported by the store | `Unsupported` | 502 |
//! | anything else (403 and 401 included: the site's credentials, not the user, are at fault) | `Local` | 451 |
//!
//! object_store hides its HTTP error type (`RetryError` lives in a private
//! module), so the status of a failed request is read from the error's
//! message ("Server returned non-2xx status code: 503 ..."); the connection
//! errors come as its public `HttpError`, whose kind is checked. The tests
//! below pin the messages this relies on.

use std::error::Error as StdError;

use ftp_storage::{ErrorKind, StorageError};
use object_store::client::{HttpError, HttpErrorKind};

/// The storage error for a failed store operation; `what` says which (for
/// the log).
pub fn from_store(what: &str, e: object_store::Error) -> StorageError {
    let kind = classify(&e);
    StorageError::new(kind, format!("{what}: {e}"))
}

/// The deadline of a request passed.
pub fn timed_out(what: &str) -> StorageError {
    StorageError::new(
        ErrorKind::TemporarilyUnavailable,
        format!("{what}: the object store did not answer in time"),
    )
}

fn classify(e: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => ErrorKind::AlreadyExists,
        E::NotSupported { .. } | E::NotImplemented => ErrorKind::Unsupported,
        E::Generic { source, .. } => classify_chain(source.as_ref()),
        _ => ErrorKind::Local,
    }
}

/// Walks the sources of a generic failure for a transport error kind or an
/// HTTP status.
fn classify_chain(mut e: &(dyn StdError + 'static)) -> ErrorKind {
    loop {
        if let Some(h) = e.downcast_ref::<HttpError>() {
            match h.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted => return ErrorKind::TemporarilyUnavailable,
                HttpErrorKind::Decode => return ErrorKind::Local,
                // object_store could not name it (a list request cut off
                // while the store shut down came as "error sending
                // request"): what lies beneath, or the message, decides.
                _ => {}
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::UnexpectedEof
            ) {
                return ErrorKind::TemporarilyUnavailable;
            }
        }
        if let Some(kind) = classify_message(&e.to_string()) {
            return kind;
        }
        match e.source() {
            Some(next) => e = next,
            None => return ErrorKind::Local,
        }
    }
}

/// The kind an error message names, if it names one.
fn classify_message(text: &str) -> Option<ErrorKind> {
    if let Some(status) = status_in(text) {
        return Some(match status {
            404 => ErrorKind::NotFound,
            409 | 412 => ErrorKind::AlreadyExists,
            416 => ErrorKind::InvalidOffset,
            501 => ErrorKind::Unsupported,
            408 | 429 | 500..=599 => ErrorKind::TemporarilyUnavailable,
            _ => ErrorKind::Local,
        });
    }
    // An error in a 200 response body (S3 does this for CopyObject and
    // CompleteMultipartUpload); reqwest's words for a request that never
    // got its response.
    if [
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "error sending request",
    ]
    .iter()
    .any(|code| text.contains(code))
    {
        return Some(ErrorKind::TemporarilyUnavailable);
    }
    None
}

/// The HTTP status in object_store's "non-2xx status code: NNN" message.
fn status_in(text: &str) -> Option<u16> {
    const MARK: &str = "status code: ";
    let at = text.find(MARK)? + MARK.len();
    let digits = text.get(at..at + 3)?;
    digits.parse().ok().filter(|s| (100..600).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        }
    }

    #[test]
    fn statuses_from_messages() {
        let k = |m: &str| from_store("t", generic(m)).kind;
        assert_eq!(
            k("Error performing GET http://x in 1ms - Server returned non-2xx status code: 503 Service Unavailable: "),
            ErrorKind::TemporarilyUnavailable
        );
        assert_eq!(
            k("Server returned non-2xx status code: 429 Too Many Requests: "),
            ErrorKind::TemporarilyUnavailable
        );
        assert_eq!(
            k("Server returned non-2xx status code: 416 Range Not Satisfiable: "),
            ErrorKind::InvalidOffset
        );
        assert_eq!(
            k("Server returned non-2xx status code: 400 Bad Request: "),
            ErrorKind::Local
        );
        assert_eq!(
            k("Server returned error response: <Code>SlowDown</Code>"),
            ErrorKind::TemporarilyUnavailable
        );
        assert_eq!(k("something else"), ErrorKind::Local);
    }

    #[test]
    fn variants() {
        let boxed = || -> Box<dyn StdError + Send + Sync> { "x".into() };
        let k = |e| from_store("t", e).kind;
        assert_eq!(
            k(object_store::Error::NotFound {
                path: "p".into(),
                source: boxed()
            }),
            ErrorKind::NotFound
        );
        assert_eq!(
            k(object_store::Error::AlreadyExists {
                path: "p".into(),
                source: boxed()
            }),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            k(object_store::Error::Precondition {
                path: "p".into(),
                source: boxed()
            }),
            ErrorKind::AlreadyExists
        );
        assert_eq!(k(object_store::Error::NotImplemented), ErrorKind::Unsupported);
        assert_eq!(
            k(object_store::Error::PermissionDenied {
                path: "p".into(),
                source: boxed()
            }),
            ErrorKind::Local
        );
    }

    /// A request object_store could not classify (`Unknown`) is judged by
    /// what lies beneath it; a response it could not decode stays local.
    #[test]
    fn http_errors_of_unknown_kind() {
        let http = |kind, source: std::io::Error| object_store::Error::Generic {
            store: "S3",
            source: Box::new(HttpError::new(kind, source)),
        };
        let k = |e| from_store("t", e).kind;
        assert_eq!(
            k(http(
                HttpErrorKind::Unknown,
                std::io::Error::other("error sending request")
            )),
            ErrorKind::TemporarilyUnavailable
        );
        assert_eq!(
            k(http(
                HttpErrorKind::Unknown,
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
            )),
            ErrorKind::TemporarilyUnavailable
        );
        assert_eq!(
            k(http(HttpErrorKind::Unknown, std::io::Error::other("something odd"))),
            ErrorKind::Local
        );
        assert_eq!(
            k(http(
                HttpErrorKind::Decode,
                std::io::Error::other("error sending request")
            )),
            ErrorKind::Local
        );
    }

    #[test]
    fn io_timeouts_in_the_chain() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow")),
        };
        assert_eq!(from_store("t", e).kind, ErrorKind::TemporarilyUnavailable);
    }
}
