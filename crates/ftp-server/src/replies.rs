//! Failures turned into replies, in one place, so the same failure always
//! gets the same code and text. Messages from storage go to the log, never
//! to the client (they can name server paths).

use ftp_proto::{PathError, Reply, ReplyCode};
use ftp_storage::{ErrorKind, StorageError};

pub(crate) fn storage_error(e: &StorageError) -> Reply {
    let (code, text) = match e.kind {
        ErrorKind::NotFound => (ReplyCode::FileUnavailable, "No such file or directory"),
        ErrorKind::PermissionDenied => (ReplyCode::FileUnavailable, "Permission denied"),
        ErrorKind::NotADirectory => (ReplyCode::FileUnavailable, "Not a directory"),
        ErrorKind::IsADirectory => (ReplyCode::FileUnavailable, "Is a directory"),
        ErrorKind::AlreadyExists => (ReplyCode::FileUnavailable, "File exists"),
        ErrorKind::DirectoryNotEmpty => (ReplyCode::FileUnavailable, "Directory not empty"),
        ErrorKind::NameNotAllowed => (ReplyCode::FileNameNotAllowed, "File name not allowed"),
        ErrorKind::InvalidOffset => (ReplyCode::FileUnavailable, "Restart offset is past the end of the file"),
        ErrorKind::Busy => (ReplyCode::FileActionNotTaken, "File busy, try again later"),
        ErrorKind::TemporarilyUnavailable => (
            ReplyCode::FileActionNotTaken,
            "Storage temporarily unavailable, try again later",
        ),
        ErrorKind::InsufficientStorage => (ReplyCode::InsufficientStorage, "Insufficient storage space"),
        ErrorKind::QuotaExceeded => (ReplyCode::ExceededStorageAllocation, "Exceeded storage allocation"),
        ErrorKind::Unsupported => (ReplyCode::CommandNotImplemented, "Not supported by this storage"),
        ErrorKind::Local => (ReplyCode::LocalError, "Local error in processing"),
    };
    if matches!(
        e.kind,
        ErrorKind::Local | ErrorKind::TemporarilyUnavailable | ErrorKind::InsufficientStorage
    ) {
        tracing::warn!(error = %e, "storage failure");
    } else {
        tracing::debug!(error = %e, "storage refused");
    }
    Reply::new(code, text)
}

pub(crate) fn path_error(e: &PathError) -> Reply {
    Reply::new(ReplyCode::FileNameNotAllowed, e.to_string())
}
