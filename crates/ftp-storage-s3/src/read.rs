//! A file being read: the body of one ranged GET, streamed chunk by chunk
//! as the server asks for bytes (never buffered whole).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use ftp_storage::FileRead;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};

pub struct S3Read {
    body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// What is left of the chunk the body gave last.
    chunk: Bytes,
    /// Bytes still expected, to tell a body cut short from the end.
    remaining: u64,
    /// The object's whole size.
    size: u64,
}

impl S3Read {
    /// The body of a GET of `len` bytes of an object of `size` bytes.
    pub fn new(body: BoxStream<'static, object_store::Result<Bytes>>, len: u64, size: u64) -> S3Read {
        S3Read {
            body: Some(body),
            chunk: Bytes::new(),
            remaining: len,
            size,
        }
    }

    /// Reading at the end of an object of `size` bytes: no request needed.
    pub fn empty(size: u64) -> S3Read {
        S3Read {
            body: None,
            chunk: Bytes::new(),
            remaining: 0,
            size,
        }
    }
}

impl FileRead for S3Read {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }
}

impl AsyncRead for S3Read {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(buf.remaining());
                buf.put_slice(&this.chunk[..n]);
                this.chunk.advance(n);
                this.remaining = this.remaining.saturating_sub(n as u64);
                return Poll::Ready(Ok(()));
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match body.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => this.chunk = chunk,
                Poll::Ready(Some(Err(e))) => {
                    this.body = None;
                    let e = crate::error::from_store("reading an object", e);
                    return Poll::Ready(Err(io::Error::other(e.to_string())));
                }
                Poll::Ready(None) => {
                    this.body = None;
                    if this.remaining > 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the object store's body ended {} bytes early", this.remaining),
                        )));
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}
