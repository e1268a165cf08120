//! Uploads: one PUT at commit for a file smaller than a part, a multipart
//! upload for a larger one.
//!
//! Bytes are gathered into a part buffer. When the first buffer fills, a
//! multipart upload is created and the buffer sent as its first part; each
//! later full buffer becomes the next part. Parts are sent by spawned tasks,
//! at most `part_concurrency` at once: when that many are in flight, the
//! writer waits for the oldest, so the client is slowed to the store's pace
//! and an upload never holds more than `part_size * (part_concurrency + 1)`
//! bytes. Commit sends the last part and completes the upload; abort, any
//! failure and drop abort it (drop in a spawned task), so an object is
//! either the whole upload or not there at all.

use std::mem;
use std::sync::Arc;

use async_trait::async_trait;
use ftp_storage::{BusyGuard, ErrorKind, Result, StorageError, Upload};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload};
use tokio::task::JoinSet;

use crate::error::from_store;
use crate::{BusyKey, Shared};

enum State {
    /// Still below one part: the bytes so far.
    Buffer(Vec<u8>),
    /// A multipart upload is open.
    Multipart(Multipart),
    /// Committed or aborted.
    Done,
}

struct Multipart {
    upload: Box<dyn MultipartUpload>,
    /// The part being filled.
    buffer: Vec<u8>,
    in_flight: JoinSet<object_store::Result<()>>,
}

pub struct S3Upload {
    shared: Arc<Shared>,
    /// Holds the target busy until the upload ends (dropped with it).
    _busy: BusyGuard<BusyKey>,
    key: Path,
    /// CreateNew: the name must still be free at commit.
    create_new: bool,
    state: State,
    written: u64,
}

impl S3Upload {
    pub fn new(shared: Arc<Shared>, busy: BusyGuard<BusyKey>, key: Path, create_new: bool) -> S3Upload {
        S3Upload {
            shared,
            _busy: busy,
            key,
            create_new,
            state: State::Buffer(Vec::new()),
            written: 0,
        }
    }

    fn what(&self, step: &str) -> String {
        format!("{step} {}", self.key)
    }

    /// Sends `part` as the next part, first waiting until fewer than
    /// `part_concurrency` parts are in flight.
    async fn send_part(&mut self, part: Vec<u8>) -> Result<()> {
        let limit = self.shared.part_concurrency;
        let what = self.what("uploading a part of");
        let State::Multipart(m) = &mut self.state else {
            unreachable!("send_part without a multipart upload")
        };
        while m.in_flight.len() >= limit {
            join_one(&mut m.in_flight, &what).await?;
        }
        let fut = m.upload.put_part(PutPayload::from(part));
        m.in_flight.spawn(fut);
        Ok(())
    }

    async fn start_multipart(&mut self, first: Vec<u8>) -> Result<()> {
        let upload = self
            .shared
            .store
            .put_multipart_opts(&self.key, PutMultipartOptions::default())
            .await
            .map_err(|e| from_store(&self.what("starting a multipart upload of"), e))?;
        self.state = State::Multipart(Multipart {
            upload,
            buffer: Vec::new(),
            in_flight: JoinSet::new(),
        });
        self.send_part(first).await
    }

    async fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        let part_size = self.shared.part_size;
        while !data.is_empty() {
            let first_part = matches!(self.state, State::Buffer(_));
            let buffer = match &mut self.state {
                State::Buffer(b) => b,
                State::Multipart(m) => &mut m.buffer,
                State::Done => return Err(StorageError::new(ErrorKind::Local, "write after the end of an upload")),
            };
            let take = (part_size - buffer.len()).min(data.len());
            if buffer.capacity() == 0 {
                // Small files stay small; a part buffer is allocated once.
                let first = if first_part { take.max(64 * 1024) } else { part_size };
                buffer.reserve_exact(first.min(part_size));
            }
            buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if buffer.len() < part_size {
                continue;
            }
            let full = mem::take(buffer);
            if first_part {
                self.start_multipart(full).await?;
            } else {
                self.send_part(full).await?;
            }
        }
        Ok(())
    }

    async fn commit_inner(&mut self) -> Result<()> {
        match mem::replace(&mut self.state, State::Done) {
            State::Buffer(bytes) => {
                let mode = if self.create_new && self.shared.conditional_put {
                    PutMode::Create
                } else {
                    PutMode::Overwrite
                };
                if self.create_new {
                    // Also for stores that honour If-None-Match: Garage 2.5
                    // ignores it on PutObject (the tests show it).
                    check_free(&self.shared, &self.key).await?;
                }
                let opts = PutOptions {
                    mode,
                    ..Default::default()
                };
                self.shared
                    .store
                    .put_opts(&self.key, PutPayload::from(bytes), opts)
                    .await
                    .map_err(|e| from_store(&self.what("storing"), e))?;
                Ok(())
            }
            State::Multipart(mut m) => {
                let what = self.what("completing the upload of");
                let result = async {
                    if !m.buffer.is_empty() {
                        let last = mem::take(&mut m.buffer);
                        let fut = m.upload.put_part(PutPayload::from(last));
                        m.in_flight.spawn(fut);
                    }
                    while !m.in_flight.is_empty() {
                        join_one(&mut m.in_flight, &what).await?;
                    }
                    if self.create_new {
                        // object_store cannot complete a multipart upload
                        // conditionally: check as late as possible.
                        check_free(&self.shared, &self.key).await?;
                    }
                    m.upload.complete().await.map_err(|e| from_store(&what, e))?;
                    Ok(())
                }
                .await;
                if result.is_err() {
                    abort_multipart(m, self.key.clone()).await;
                }
                result.map_err(|e| self.lost_upload(e))
            }
            State::Done => Err(StorageError::new(ErrorKind::Local, "upload already finished")),
        }
    }
}

impl S3Upload {
    /// A multipart upload the store no longer knows (`NoSuchUpload`, a
    /// NotFound): Garage drops an upload in progress when another writer
    /// stores the same key. The name was taken meanwhile: AlreadyExists for
    /// CreateNew, Busy (450, worth trying again) for Replace.
    fn lost_upload(&self, e: StorageError) -> StorageError {
        if e.kind != ErrorKind::NotFound {
            return e;
        }
        let kind = if self.create_new {
            ErrorKind::AlreadyExists
        } else {
            ErrorKind::Busy
        };
        StorageError::new(
            kind,
            format!(
                "{} was written by another writer during this upload ({})",
                self.key, e.message
            ),
        )
    }
}

/// AlreadyExists when an object is at `key`.
async fn check_free(shared: &Shared, key: &Path) -> Result<()> {
    match shared.store.head(key).await {
        Ok(_) => Err(StorageError::new(ErrorKind::AlreadyExists, format!("{key} exists"))),
        Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(from_store(&format!("HEAD {key}"), e)),
    }
}

/// Waits for one part task; its failure (or panic) fails the upload.
async fn join_one(set: &mut JoinSet<object_store::Result<()>>, what: &str) -> Result<()> {
    match set.join_next().await {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(from_store(what, e)),
        Some(Err(e)) => Err(StorageError::new(
            ErrorKind::Local,
            format!("{what}: part task failed: {e}"),
        )),
    }
}

/// Stops the parts in flight and aborts the multipart upload, so the store
/// drops the parts already sent.
async fn abort_multipart(mut m: Multipart, key: Path) {
    m.in_flight.abort_all();
    while m.in_flight.join_next().await.is_some() {}
    if let Err(e) = m.upload.abort().await {
        tracing::warn!(%key, error = %e, "aborting a multipart upload failed; the store keeps its parts until its own clean-up");
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let r = self.write_inner(data).await.map_err(|e| self.lost_upload(e));
        if r.is_ok() {
            self.written += data.len() as u64;
        } else if let State::Multipart(m) = mem::replace(&mut self.state, State::Done) {
            abort_multipart(m, self.key.clone()).await;
        }
        r
    }

    /// Every request of the commit (the last parts, the completion) has
    /// its own deadline and retry budget, so the commit as a whole is
    /// bounded too.
    async fn commit(mut self: Box<Self>) -> Result<u64> {
        self.commit_inner().await.map(|()| self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if let State::Multipart(m) = mem::replace(&mut self.state, State::Done) {
            abort_multipart(m, self.key.clone()).await;
        }
        Ok(())
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let State::Multipart(m) = mem::replace(&mut self.state, State::Done) {
            let key = self.key.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(abort_multipart(m, key));
                }
                Err(_) => tracing::warn!(%key, "multipart upload dropped outside a runtime; not aborted"),
            }
        }
    }
}
