//! Directory listings, one page of `ListObjectsV2` at a time.
//!
//! Each request asks for the keys below the directory's prefix with the
//! `/` delimiter, so the store itself folds everything deeper into one
//! common prefix per subdirectory: a page holds at most [`PAGE_SIZE`]
//! direct entries however deep the tree is, and the next page is asked
//! for (with the continuation token) only when the previous one has been
//! consumed. Memory is one page, whatever the directory's size.
//!
//! Within a page the store returns objects and common prefixes in two
//! sorted lists; they are merged, so entries come in key order overall.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use ftp_storage::{DirEntry, DirStream, EntryKind, Facts, Result};
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};

use crate::keys::child_name;
use crate::Shared;

/// Entries asked for per request (S3's maximum).
pub const PAGE_SIZE: usize = 1000;

/// One page of the listing of `prefix` (`None`: the bucket's root).
pub async fn page(
    shared: &Shared,
    prefix: Option<&str>,
    token: Option<String>,
    max_keys: usize,
    delimited: bool,
) -> Result<PaginatedListResult> {
    let opts = PaginatedListOptions {
        delimiter: delimited.then_some(Cow::Borrowed("/")),
        max_keys: Some(max_keys),
        page_token: token,
        ..Default::default()
    };
    shared
        .store
        .list_paginated(prefix, opts)
        .await
        .map_err(|e| crate::error::from_store(&format!("listing {}", prefix.unwrap_or("/")), e))
}

/// The entries of one page directly inside `prefix`, in key order.
pub fn entries(prefix: Option<&str>, page: PaginatedListResult) -> VecDeque<DirEntry> {
    let result = page.result;
    let mut files = result
        .objects
        .into_iter()
        .filter_map(|meta| {
            // The directory's own marker comes back as an object named like
            // the directory: not an entry.
            let name = child_name(prefix, meta.location.as_ref())?.to_string();
            Some(DirEntry {
                name,
                facts: Facts {
                    kind: EntryKind::File,
                    size: meta.size,
                    modified: Some(meta.last_modified.into()),
                    mode: None,
                },
            })
        })
        .peekable();
    let mut dirs = result
        .common_prefixes
        .into_iter()
        .filter_map(|p| {
            let name = child_name(prefix, p.as_ref())?.to_string();
            Some(DirEntry {
                name,
                facts: Facts {
                    kind: EntryKind::Dir,
                    size: 0,
                    modified: None,
                    mode: None,
                },
            })
        })
        .peekable();
    let mut out = VecDeque::new();
    loop {
        let take_file = match (files.peek(), dirs.peek()) {
            (Some(f), Some(d)) => f.name <= d.name,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_file { files.next() } else { dirs.next() };
        out.extend(next);
    }
    out
}

/// The stream handed to the server: the current page and the token of the
/// next.
pub struct S3DirStream {
    shared: Arc<Shared>,
    prefix: Option<String>,
    entries: VecDeque<DirEntry>,
    next_token: Option<String>,
}

impl S3DirStream {
    /// Starts from an already fetched first page.
    pub fn new(shared: Arc<Shared>, prefix: Option<String>, first: PaginatedListResult) -> S3DirStream {
        let next_token = first.page_token.clone();
        let entries = entries(prefix.as_deref(), first);
        S3DirStream {
            shared,
            prefix,
            entries,
            next_token,
        }
    }
}

#[async_trait]
impl DirStream for S3DirStream {
    async fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        loop {
            if let Some(e) = self.entries.pop_front() {
                return Ok(Some(e));
            }
            let Some(token) = self.next_token.take() else {
                return Ok(None);
            };
            let page = page(&self.shared, self.prefix.as_deref(), Some(token), PAGE_SIZE, true).await?;
            self.next_token = page.page_token.clone();
            self.entries = entries(self.prefix.as_deref(), page);
        }
    }

    /// The rest of the current page at once.
    async fn next_entries(&mut self, out: &mut Vec<DirEntry>) -> Result<()> {
        if let Some(first) = self.next_entry().await? {
            out.push(first);
            out.extend(self.entries.drain(..));
        }
        Ok(())
    }
}
