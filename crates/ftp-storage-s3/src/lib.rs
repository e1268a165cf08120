//! S3-compatible object storage for ferroftp (AWS S3, Garage, MinIO, Ceph
//! RGW), over the `object_store` crate.
//!
//! ## Layout of the bucket
//!
//! Every user's files live under `<prefix>/<home>/`: the FTP path
//! `/docs/a.txt` of a user whose home is `/alice` is the key
//! `<prefix>/alice/docs/a.txt` (no prefix: `alice/docs/a.txt`). Directories
//! are key prefixes. MKD writes a zero-byte marker object `<dir>/`, the
//! convention S3 consoles use, so an empty directory exists; a directory
//! that only has objects below it (written by another tool) exists too,
//! with or without a marker.
//!
//! ## What an object store can and cannot do (see [`Capabilities`])
//!
//! - Listings are streamed a page at a time (`ListObjectsV2` with the `/`
//!   delimiter and continuation tokens, through object_store's
//!   `PaginatedListStore`): at most one page of 1,000 entries is held,
//!   whatever the directory's size or depth.
//! - Reads are ranged GETs whose body is streamed, never buffered whole.
//! - Uploads: a file smaller than one part is one PUT at commit; a larger
//!   one is a multipart upload of `part_size` parts (at most
//!   `part_concurrency` of them in flight), completed at commit and aborted
//!   on abort, on a failure and on drop. Nothing is visible before commit.
//! - `append = false`: an object cannot be written in place, so APPE and
//!   REST+STOR are answered 502 by the server. (Emulating them would mean
//!   re-uploading the whole object for each append.)
//! - `rename_directories = false`: renaming a prefix means copying every
//!   object below it, neither atomic nor bounded. File renames are copy +
//!   delete (single-request copy, so objects up to 5 GiB).
//! - `set_mtime = false`, `chmod = false`, `unix_modes = false`: objects
//!   carry their store-assigned modification time and no permission bits.
//! - `CreateNew` (STOU) checks that the name is free when the upload opens
//!   and again just before the commit; a single-PUT file is then written
//!   with a conditional PUT (`If-None-Match: *`), which closes the last
//!   window on stores that honour it (AWS S3, MinIO, R2). Garage 2.5
//!   ignores that header, and object_store cannot complete a multipart
//!   upload conditionally, so there a writer racing between the last check
//!   and the commit can still be overwritten. The server's STOU picks names
//!   no one else uses, which makes that race theoretical.
//!
//! - A second upload of an object while one runs, and a delete, rename or
//!   MKD of it, fail with `Busy` (450) within this process (for every user
//!   whose home reaches the key). Uploads through other nodes are not seen:
//!   an object store has no locks, and the last completed upload wins.
//!
//! Errors become [`ErrorKind`]s in `error.rs`: missing objects `NotFound`,
//! failed preconditions `AlreadyExists`, throttling, time-outs, connection
//! failures and 5xx `TemporarilyUnavailable` (450), everything else
//! `Local` (451). object_store retries transient failures itself, within
//! the small budget of [`S3Options::max_retries`] and
//! [`S3Options::retry_timeout`].
//!
//! Layout of the crate:
//! - this file: [`S3Options`], [`S3Backend`] and the clients.
//! - `keys`: from [`FtpPath`] to object keys and prefixes.
//! - `storage`: [`S3Storage`], the [`Storage`] implementation.
//! - `list`: the paginated directory stream.
//! - `read`: the streamed ranged GET.
//! - `upload`: single PUT or multipart uploads.
//! - `error`: object_store errors to storage error kinds.

mod error;
mod keys;
mod list;
mod read;
mod storage;
mod upload;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use ftp_storage::{Backend, BusyTargets, Capabilities, ErrorKind, FtpPath, Result, Storage, StorageError};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

pub use storage::S3Storage;

/// The smallest part S3 accepts (except for the last one).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// What the backend can do; the same for every user.
pub const CAPABILITIES: Capabilities = Capabilities {
    append: false,
    rename_directories: false,
    set_mtime: false,
    chmod: false,
    unix_modes: false,
};

/// Where the store is and how to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The S3 API's URL (`http://127.0.0.1:3900`, `https://s3.example.com`).
    /// `None`: AWS S3 itself, `https://s3.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// The region requests are signed for (`garage` for Garage's default).
    pub region: String,
    pub bucket: String,
    /// Keys of all homes start with this (no leading or trailing `/`;
    /// empty: the bucket's root).
    pub prefix: String,
    /// Credentials; `None` takes `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` if set) from the
    /// environment. One of the two must give a key pair: there is no
    /// fallback to instance metadata.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints (for a store on loopback or a private
    /// network). Off: only https.
    pub allow_http: bool,
    /// Virtual-hosted-style requests (`https://<bucket>.<endpoint>/key`)
    /// instead of path style (`https://<endpoint>/<bucket>/key`). Off by
    /// default: path style works with every S3-compatible store.
    pub virtual_hosted_style: bool,
    /// Size of each multipart part, and the size below which a file is one
    /// PUT. Between 5 MiB and 5 GiB.
    pub part_size: usize,
    /// Parts of one upload sent at once. An upload holds at most
    /// `part_size * (part_concurrency + 1)` bytes.
    pub part_concurrency: usize,
    /// Deadline of one request (HEAD, LIST, PUT, a part, DELETE, COPY, and
    /// the start of a GET; a GET's body is bounded by the server's transfer
    /// stall timeout instead).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of a transient failure, and the time after which object_store
    /// stops retrying.
    pub max_retries: usize,
    pub retry_timeout: Duration,
    /// Send `If-None-Match: *` with the PUT of a `CreateNew` upload. Turn
    /// off for a store that rejects the header.
    pub conditional_put: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: "us-east-1".to_string(),
            bucket: String::new(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            virtual_hosted_style: false,
            part_size: 8 * 1024 * 1024,
            part_concurrency: 2,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            conditional_put: true,
        }
    }
}

impl fmt::Debug for S3Options {
    /// Everything but the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("part_size", &self.part_size)
            .field("part_concurrency", &self.part_concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .field("conditional_put", &self.conditional_put)
            .finish()
    }
}

/// An upload target: the store (endpoint and bucket) and the object key.
pub(crate) type BusyKey = (Arc<str>, String);

/// Upload targets in progress in this process, for every backend instance
/// (two instances on one bucket see each other's uploads). Other nodes'
/// uploads are not seen: an object store has no locks.
fn busy_targets() -> Arc<BusyTargets<BusyKey>> {
    static BUSY: OnceLock<Arc<BusyTargets<BusyKey>>> = OnceLock::new();
    Arc::clone(BUSY.get_or_init(BusyTargets::new))
}

/// The clients and settings every user's storage shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Names the bucket in busy keys.
    pub store_id: Arc<str>,
    pub busy: Arc<BusyTargets<BusyKey>>,
    /// For every request but GETs: each request bounded by
    /// `request_timeout`.
    pub store: AmazonS3,
    /// For GETs, whose bodies stream for as long as the FTP client reads:
    /// no overall deadline (the start of the request is bounded by hand).
    pub reader: AmazonS3,
    pub request_timeout: Duration,
    pub part_size: usize,
    pub part_concurrency: usize,
    pub conditional_put: bool,
}

/// The S3 backend: one bucket (and prefix) holding every user's home.
#[derive(Debug, Clone)]
pub struct S3Backend {
    shared: Arc<Shared>,
    prefix: String,
}

impl S3Backend {
    /// Builds the clients; no request is made yet (the first login finds
    /// out whether the store answers).
    pub fn new(options: S3Options) -> Result<S3Backend> {
        let invalid = |m: String| StorageError::new(ErrorKind::Local, m);
        if options.bucket.is_empty() {
            return Err(invalid("s3: no bucket given".into()));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&options.part_size) {
            return Err(invalid(format!(
                "s3: part size {} is outside {MIN_PART_SIZE}..={MAX_PART_SIZE}",
                options.part_size
            )));
        }
        let prefix = keys::normalise_prefix(&options.prefix).map_err(invalid)?;
        let access_key = options
            .access_key_id
            .clone()
            .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty()));
        let secret = options
            .secret_access_key
            .clone()
            .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty()));
        let (Some(access_key), Some(secret)) = (access_key, secret) else {
            return Err(invalid(
                "s3: no credentials: give an access key id and secret in the configuration or in \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .into(),
            ));
        };
        // The session token only goes with the key pair it was issued for.
        let token = match &options.access_key_id {
            None => std::env::var("AWS_SESSION_TOKEN").ok().filter(|v| !v.is_empty()),
            Some(_) => None,
        };

        let build = |timeout: Option<Duration>| {
            let mut client = ClientOptions::new()
                .with_allow_http(options.allow_http)
                .with_connect_timeout(options.connect_timeout);
            client = match timeout {
                Some(t) => client.with_timeout(t),
                None => client.with_timeout_disabled(),
            };
            let retry = RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: options.max_retries,
                retry_timeout: options.retry_timeout,
            };
            let mut builder = AmazonS3Builder::new()
                .with_region(&options.region)
                .with_bucket_name(&options.bucket)
                .with_access_key_id(&access_key)
                .with_secret_access_key(&secret)
                .with_virtual_hosted_style_request(options.virtual_hosted_style)
                .with_allow_http(options.allow_http)
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_retry(retry)
                .with_client_options(client);
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(token) = &token {
                builder = builder.with_token(token);
            }
            builder
                .build()
                .map_err(|e| invalid(format!("s3: configuring the client: {e}")))
        };
        Ok(S3Backend {
            shared: Arc::new(Shared {
                store_id: format!(
                    "{} {}",
                    options
                        .endpoint
                        .as_deref()
                        .unwrap_or(&format!("aws:{}", options.region)),
                    options.bucket
                )
                .into(),
                busy: busy_targets(),
                store: build(Some(options.request_timeout))?,
                reader: build(None)?,
                request_timeout: options.request_timeout,
                part_size: options.part_size,
                part_concurrency: options.part_concurrency.max(1),
                conditional_put: options.conditional_put,
            }),
            prefix,
        })
    }

    /// The storage of `home` without touching the store (no marker made).
    pub fn storage_at(&self, home: &FtpPath) -> S3Storage {
        S3Storage::new(Arc::clone(&self.shared), keys::Keys::new(&self.prefix, home))
    }
}

#[async_trait]
impl Backend for S3Backend {
    /// Makes the home's marker when nothing is there yet, so the home shows
    /// in listings of the level above; a home that already holds objects is
    /// left alone.
    async fn user_storage(&self, home: &FtpPath) -> Result<Arc<dyn Storage>> {
        let storage = self.storage_at(home);
        storage.ensure_root().await?;
        Ok(Arc::new(storage))
    }

    /// One listing request on the prefix: the store answers, and takes
    /// these credentials for this bucket.
    async fn ready(&self) -> Result<()> {
        self.storage_at(&FtpPath::root()).probe().await
    }
}
