//! The uploads the generated client cannot make, in two wire formats.
//!
//! * **Multipart** ([`Upload`]): `upload_comment_attachment`,
//!   `upload_comment_audio`, `upload_document`, `upload_email_attachment`
//!   and `upload_ixp_document` are each a `PUT` with a `multipart/form-data`
//!   body holding one part named `file` (the content, with its file name
//!   and media type).
//! * **Raw body** ([`RawBody`]): `update_appliance_config`, `upload_files`,
//!   `detect_csv_format` and `sync_comments_from_csv` send the file itself
//!   as the body, streamed from a file or a byte stream.
//!
//! progenitor cannot build multipart bodies, and would expose its HTTP
//! library's body type for a raw one, so the spec declares both as raw
//! bytes (`x-hand-written: multipart` / `octet-stream`) and they are
//! written here by hand, on
//! the same client as every generated call: the request goes through the
//! generated client's hooks (bearer token, 401 refresh, retries, rate gate,
//! tracing, Server-Timing) and its result through the same error mapping as
//! the adapter under every operation's `send()`, so a failure is the same [`Error`] a generated
//! operation would return.
//!
//! ```no_run
//! use cm_api::upload::Upload;
//!
//! # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let pdf = std::fs::read("invoice.pdf")?;
//! let stored = client
//!     .upload_document()
//!     .source_id("18ba5ce699f8da1f")
//!     .file(Upload::new("invoice.pdf", "application/pdf", pdf))
//!     .send()
//!     .await?;
//! println!("comment {} holds the document", stored.comment_id);
//! # Ok(()) }
//! ```
//!
//! # Retries
//!
//! The body is encoded into memory once, before sending, so every attempt
//! sends the same bytes:
//!
//! * `upload_comment_attachment` and `upload_comment_audio` are idempotent
//!   by key: the path names the comment (and the attachment's index), and a
//!   repeat stores the same content at the same place again. They are
//!   retried like any other `PUT` (the method default of
//!   [`retry_class`](crate::retry::retry_class)).
//! * `upload_document` creates a new comment per upload, so a repeat after
//!   a lost answer (a gateway timeout included) could store the document
//!   twice. Its [`RETRY_TABLE`](crate::retry::RETRY_TABLE) row makes it
//!   never retried blindly; retry it yourself when a duplicate is acceptable.
//!
//! The content is held in memory (twice, briefly, while the body is
//! encoded): attachments, call recordings and documents are files, not
//! datasets.
//!
//! A [`RawBody`] is different: a CSV of a million comments should not have
//! to fit in memory. [`RawBody::from_path`] and [`RawBody::from_stream`]
//! are read as they are sent, in chunks, and so are sent once: a streamed
//! body cannot be replayed, so a transient failure is returned rather than
//! retried ([`Error::retry_after`] says when to call again; a file is read
//! anew). [`RawBody::from_bytes`] is held in memory and retried like any
//! other request of its operation.

use std::fmt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cm_api_gen::types::{
    ApplianceConfigUpdateResponse, CsvFormatResponse, IxpDocumentUploadResponse, OkResponse,
    SyncCommentsResponse, UploadAttachmentResponse, UploadDocumentResponse,
};
use futures::stream::BoxStream;
use futures::{Stream, TryStreamExt};
use progenitor_client::ClientInfo;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use serde::de::DeserializeOwned;

use crate::client::{Client, Response};
use crate::error::Error;
use crate::request::{execute, json_response, missing, segment};

/// The name of the one multipart part every upload sends.
const FILE_PART: &str = "file";

/// A file to upload: its name, its media type and its content.
///
/// ```
/// use cm_api::upload::Upload;
///
/// let upload = Upload::new("call-0042.mp3", "audio/mpeg", vec![0xff, 0xfb, 0x90]);
/// assert_eq!(upload.file_name(), "call-0042.mp3");
/// assert_eq!(upload.len(), 3);
/// ```
#[derive(Clone)]
pub struct Upload {
    file_name: String,
    content_type: String,
    content: Bytes,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The content is a customer's file: its size is enough in a log.
        f.debug_struct("Upload")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.content.len())
            .finish()
    }
}

impl Upload {
    /// A file from memory. `content` can be a `Vec<u8>`, a `&'static [u8]`
    /// or a [`Bytes`] (not copied). The file name and media type are checked
    /// when the upload is sent: a bad one is an [`Error::InvalidRequest`]
    /// and nothing is sent.
    pub fn new(
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        content: impl Into<Bytes>,
    ) -> Self {
        Self {
            file_name: file_name.into(),
            content_type: content_type.into(),
            content: content.into(),
        }
    }

    /// Reads the file at `path`, naming the upload after the file's last
    /// path component.
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// let upload = cm_api::upload::Upload::from_path("scans/invoice.pdf", "application/pdf").await?;
    /// assert_eq!(upload.file_name(), "invoice.pdf");
    /// # Ok(()) }
    /// ```
    pub async fn from_path(
        path: impl AsRef<Path>,
        content_type: impl Into<String>,
    ) -> std::io::Result<Self> {
        let path = path.as_ref();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} does not name a file", path.display()),
                )
            })?;
        let content = tokio::fs::read(path).await?;
        Ok(Self::new(file_name, content_type, content))
    }

    /// The file name sent with the content.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The media type sent with the content, e.g. `application/pdf`.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The content.
    pub fn content(&self) -> &Bytes {
        &self.content
    }

    /// The content's size in bytes.
    pub fn len(&self) -> usize {
        self.content.len()
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }

    /// The `multipart/form-data` body (one part, `file`) and its
    /// `Content-Type` header, in memory so that a retry can resend it.
    async fn encode(self) -> Result<(HeaderValue, Bytes), String> {
        if self.file_name.is_empty() {
            return Err("the upload's file name is empty".to_owned());
        }
        if self.file_name.chars().any(char::is_control) {
            return Err(format!(
                "the upload's file name {:?} contains control characters",
                self.file_name
            ));
        }
        let size = self.content.len();
        let part = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::from(self.content),
            size as u64,
        )
        .file_name(self.file_name)
        .mime_str(&self.content_type)
        .map_err(|_| {
            format!(
                "the upload's content type {:?} is not a media type",
                self.content_type
            )
        })?;
        let form = reqwest::multipart::Form::new().part(FILE_PART, part);
        let content_type = HeaderValue::from_str(&format!(
            "multipart/form-data; boundary={}",
            form.boundary()
        ))
        .map_err(|e| e.to_string())?;
        // Every piece is already in memory, so this completes at once.
        let mut body = Vec::with_capacity(size + 512);
        let mut pieces = std::pin::pin!(form.into_stream());
        while let Some(piece) = pieces.try_next().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&piece);
        }
        Ok((content_type, Bytes::from(body)))
    }
}

/// Chunk size for a [`RawBody`] read from a file.
const FILE_CHUNK: usize = 64 * 1024;

/// A raw request body: the file itself, sent as it is read, for the
/// operations whose body is not JSON (`update_appliance_config`,
/// `upload_files`, `detect_csv_format`, `sync_comments_from_csv`).
///
/// A body from a file or a stream is never held whole in memory, and is
/// sent once (see the module documentation on retries).
///
/// ```
/// use cm_api::upload::RawBody;
///
/// let csv = RawBody::from_bytes("text/csv", "id,subject\n1,Invoice overdue\n");
/// assert_eq!(csv.content_type(), "text/csv");
/// assert_eq!(csv.len(), Some(29));
/// ```
pub struct RawBody {
    content_type: String,
    len: Option<u64>,
    content: RawContent,
}

enum RawContent {
    Bytes(Bytes),
    File(PathBuf, tokio::fs::File),
    Stream(BoxStream<'static, std::io::Result<Bytes>>),
}

impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The content is a customer's file: where it comes from is enough.
        let source = match &self.content {
            RawContent::Bytes(_) => "memory".to_owned(),
            RawContent::File(path, _) => path.display().to_string(),
            RawContent::Stream(_) => "stream".to_owned(),
        };
        f.debug_struct("RawBody")
            .field("content_type", &self.content_type)
            .field("len", &self.len)
            .field("source", &source)
            .finish()
    }
}

impl RawBody {
    /// A body from memory. `content` can be a `Vec<u8>`, a `String`, a
    /// `&'static str` or [`Bytes`] (not copied). Retried like any request
    /// of its operation, since it can be sent again.
    pub fn from_bytes(content_type: impl Into<String>, content: impl Into<Bytes>) -> Self {
        let content = content.into();
        Self {
            content_type: content_type.into(),
            len: Some(content.len() as u64),
            content: RawContent::Bytes(content),
        }
    }

    /// The file at `path`, opened now (so a missing file fails here) and
    /// read in 64 KiB chunks while it is sent, with its size as
    /// `Content-Length`.
    ///
    /// ```no_run
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use cm_api::upload::RawBody;
    ///
    /// let csv = RawBody::from_path("exports/tickets.csv", "text/csv").await?;
    /// let synced = client
    ///     .sync_comments_from_csv()
    ///     .project("acme")
    ///     .source_name("tickets")
    ///     .csv(csv)
    ///     .send()
    ///     .await?;
    /// println!("{} new comments", synced.new);
    /// # Ok(()) }
    /// ```
    pub async fn from_path(
        path: impl AsRef<Path>,
        content_type: impl Into<String>,
    ) -> std::io::Result<Self> {
        let path = path.as_ref();
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        Ok(Self {
            content_type: content_type.into(),
            len: Some(len),
            content: RawContent::File(path.to_owned(), file),
        })
    }

    /// A body read from `stream` while it is sent. `len`, when known, is
    /// sent as `Content-Length` and must match what the stream yields (the
    /// request fails otherwise); without it the body is sent chunked. An
    /// error from the stream aborts the request and is returned as an
    /// [`Error::Transport`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use cm_api::upload::RawBody;
    ///
    /// let rows = futures::stream::iter(["id,subject\n", "1,Invoice overdue\n"])
    ///     .map(|row| Ok::<_, std::io::Error>(Bytes::from_static(row.as_bytes())));
    /// # use futures::StreamExt;
    /// let body = RawBody::from_stream("text/csv", rows, None);
    /// assert_eq!(body.len(), None);
    /// ```
    pub fn from_stream<S>(content_type: impl Into<String>, stream: S, len: Option<u64>) -> Self
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        Self {
            content_type: content_type.into(),
            len,
            content: RawContent::Stream(Box::pin(stream)),
        }
    }

    /// The media type sent as `Content-Type`, e.g. `text/csv`.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The body's size in bytes, when known before sending.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len == Some(0)
    }

    /// The body for reqwest, and its `Content-Type`.
    fn into_body(self) -> Result<(HeaderValue, Option<u64>, reqwest::Body), String> {
        let content_type = HeaderValue::from_str(&self.content_type)
            .ok()
            .filter(|_| is_media_type(&self.content_type))
            .ok_or_else(|| {
                format!(
                    "the body's content type {:?} is not a media type",
                    self.content_type
                )
            })?;
        let body = match self.content {
            RawContent::Bytes(bytes) => reqwest::Body::from(bytes),
            RawContent::File(_, file) => reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::with_capacity(file, FILE_CHUNK),
            ),
            RawContent::Stream(stream) => reqwest::Body::wrap_stream(stream),
        };
        Ok((content_type, self.len, body))
    }
}

/// Whether `value` is `type/subtype`, optionally followed by `;` and
/// parameters (RFC 9110 section 8.3.1; the parameters are the server's to
/// judge).
fn is_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    matches!(essence.split_once('/'), Some((kind, sub)) if token(kind) && token(sub))
}

/// A request body of an upload: encoded into its `Content-Type`, its
/// length when known, and the body itself.
trait IntoBody {
    async fn into_parts(self) -> Result<(HeaderValue, Option<u64>, reqwest::Body), String>;
}

impl IntoBody for Upload {
    async fn into_parts(self) -> Result<(HeaderValue, Option<u64>, reqwest::Body), String> {
        let (content_type, body) = self.encode().await?;
        Ok((content_type, None, body.into()))
    }
}

impl IntoBody for RawBody {
    async fn into_parts(self) -> Result<(HeaderValue, Option<u64>, reqwest::Body), String> {
        self.into_body()
    }
}

/// A path parameter of an upload, checked and percent-encoded.
trait PathValue {
    fn segment(&self, operation: &'static str, name: &'static str) -> Result<String, Error>;
}

impl PathValue for String {
    fn segment(&self, operation: &'static str, name: &'static str) -> Result<String, Error> {
        segment(operation, name, self)
    }
}

impl PathValue for usize {
    fn segment(&self, _: &'static str, _: &'static str) -> Result<String, Error> {
        Ok(self.to_string())
    }
}

/// The setter's argument for a path parameter of type `$ty`.
macro_rules! setter_arg {
    (String) => { impl Into<String> };
    (usize) => { usize };
}

/// One hand-written upload operation: its builder (path parameters, the
/// body, [`with_options`](crate::CallOptions)), its method on [`Client`]
/// and its [`Operation`](crate::Operation) impl. A builder whose body is an
/// [`Upload`] is `Clone` (given as `#[derive(Clone)]`); one with a
/// [`RawBody`] is not, since a streamed body is read once. A parameter or
/// body left unset is an [`Error::InvalidRequest`] from `send()`, and
/// nothing is sent.
macro_rules! upload {
    (
        $(#[$doc:meta])*
        $builder:ident, $op:ident, $method:ident $path:literal -> $output:ty,
        [$($param:ident: $pty:ident),*], $body:ident: $body_ty:ident
    ) => {
        $(#[$doc])*
        #[must_use = "an operation sends nothing until `send()` is awaited"]
        pub struct $builder {
            client: Client,
            options: crate::CallOptions,
            $($param: Option<$pty>,)*
            $body: Option<$body_ty>,
        }

        impl Client {
            #[doc = concat!("`", stringify!($op), "`: see [`", stringify!($builder), "`].")]
            pub fn $op(&self) -> $builder {
                $builder {
                    client: self.clone(),
                    options: crate::CallOptions::new(),
                    $($param: None,)*
                    $body: None,
                }
            }
        }

        impl $builder {
            $(
                #[doc = concat!("The `", stringify!($param), "` path parameter (required).")]
                pub fn $param(mut self, value: setter_arg!($pty)) -> Self {
                    self.$param = Some(value.into());
                    self
                }
            )*

            #[doc = concat!("The body (required): a [`", stringify!($body_ty), "`].")]
            pub fn $body(mut self, value: $body_ty) -> Self {
                self.$body = Some(value);
                self
            }

            /// Per-call overrides of the attempt timeout, the deadline and
            /// the retry policy, as on every operation.
            pub fn with_options(mut self, options: crate::CallOptions) -> Self {
                self.options = options;
                self
            }

            /// Sends the request through the client's authentication,
            /// retries and timeouts (or this call's options).
            pub async fn send(self) -> Result<Response<$output>, Error> {
                const OPERATION: &str = stringify!($op);
                let Self { client, options, $($param,)* $body } = self;
                $(
                    let $param = $param
                        .ok_or_else(|| missing(OPERATION, stringify!($param)))?
                        .segment(OPERATION, stringify!($param))?;
                )*
                let path = format!($path);
                let $body = $body.ok_or_else(|| missing(OPERATION, stringify!($body)))?;
                let (content_type, len, body) = $body
                    .into_parts()
                    .await
                    .map_err(|message| invalid(OPERATION, message))?;
                send_body(
                    &client,
                    options,
                    OPERATION,
                    reqwest::Method::$method,
                    path,
                    content_type,
                    len,
                    body,
                )
                .await
            }
        }

        impl fmt::Debug for $builder {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($builder))
                    $(.field(stringify!($param), &self.$param))*
                    .field(stringify!($body), &self.$body)
                    .finish_non_exhaustive()
            }
        }

        impl crate::Operation for $builder {
            type Output = $output;
            const OPERATION_ID: &'static str = stringify!($op);

            fn with_options(self, options: crate::CallOptions) -> Self {
                $builder::with_options(self, options)
            }

            fn send(self) -> impl std::future::Future<Output = Result<Response<$output>, Error>> + Send {
                $builder::send(self)
            }
        }
    };
}

upload! {
    /// `upload_comment_attachment`: stores the content of attachment number
    /// `attachment_index` (from 0, its position in the comment's
    /// `attachments`) of a comment already synced with that attachment's
    /// metadata. The answer's `content_hash` matches the attachment's.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let stored = client
    ///     .upload_comment_attachment()
    ///     .source_id("18ba5ce699f8da1f")
    ///     .comment_id("msg-42")
    ///     .attachment_index(0)
    ///     .file(Upload::new("report.pdf", "application/pdf", b"%PDF-1.7 ...".as_slice()))
    ///     .send()
    ///     .await?;
    /// println!("stored, hash {}", stored.content_hash);
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    UploadCommentAttachment, upload_comment_attachment,
    PUT "/api/_private/sources/id:{source_id}/comments/{comment_id}/attachments/{attachment_index}"
        -> UploadAttachmentResponse,
    [source_id: String, comment_id: String, attachment_index: usize], file: Upload
}

upload! {
    /// `upload_comment_audio`: attaches the audio recording of a call to
    /// its comment.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let audio = Upload::from_path("calls/0042.mp3", "audio/mpeg").await?;
    /// client
    ///     .upload_comment_audio()
    ///     .source_id("18ba5ce699f8da1f")
    ///     .comment_id("call-0042")
    ///     .file(audio)
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    UploadCommentAudio, upload_comment_audio,
    PUT "/api/_private/sources/id:{source_id}/comments/{comment_id}/audio" -> OkResponse,
    [source_id: String, comment_id: String], file: Upload
}

upload! {
    /// `upload_document`: stores a document (e.g. a PDF) in an IXP source,
    /// which creates a comment for it. The answer names the comment and the
    /// document's attachment reference; see the [module](self) on retries.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let document = Upload::from_path("invoice.pdf", "application/pdf").await?;
    /// let stored = client
    ///     .upload_document()
    ///     .source_id("18ba5ce699f8da1f")
    ///     .file(document)
    ///     .send()
    ///     .await?;
    /// println!("comment {}, attachment {:?}", stored.comment_id, stored.attachment_ref);
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    UploadDocument, upload_document,
    PUT "/api/_private/sources/id:{source_id}/documents" -> UploadDocumentResponse,
    [source_id: String], file: Upload
}

upload! {
    /// `upload_email_attachment`: stores the content of attachment number
    /// `attachment_index` (from 0) of a raw email already added to a bucket
    /// with that attachment's metadata.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let file = Upload::from_path("mail/statement.pdf", "application/pdf").await?;
    /// let stored = client
    ///     .upload_email_attachment()
    ///     .bucket_id("5c1d9e0a7f3b2e48")
    ///     .email_id("AAMkADg3")
    ///     .attachment_index(0)
    ///     .file(file)
    ///     .send()
    ///     .await?;
    /// println!("stored, hash {}", stored.content_hash);
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    UploadEmailAttachment, upload_email_attachment,
    PUT "/api/_private/buckets/id:{bucket_id}/emails/{email_id}/attachments/{attachment_index}"
        -> UploadAttachmentResponse,
    [bucket_id: String, email_id: String, attachment_index: usize], file: Upload
}

upload! {
    /// `upload_ixp_document`: sends a document to a model version (a
    /// number, or `latest`) of an IXP project for extraction. Each upload
    /// is a new document, so, like [`UploadDocument`], it is never retried
    /// blindly.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let invoice = Upload::from_path("invoice.pdf", "application/pdf").await?;
    /// let uploaded = client
    ///     .upload_ixp_document()
    ///     .project_uuid("3f2a9c1e-7b4d-4e8a-9c2f-1d5e6a7b8c9d")
    ///     .model_version("latest")
    ///     .file(invoice)
    ///     .send()
    ///     .await?;
    /// println!("document {:?}", uploaded.document);
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    UploadIxpDocument, upload_ixp_document,
    PUT "/api/_private/ixp/projects/{project_uuid}/models/{model_version}/documents"
        -> IxpDocumentUploadResponse,
    [project_uuid: String, model_version: String], file: Upload
}

upload! {
    /// `update_appliance_config`: replaces the appliance configuration
    /// stored under `config_key` in `project` with the raw configuration
    /// text. `get_appliance_config` downloads it.
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let config = RawBody::from_path("exchange-support.json", "application/json").await?;
    /// client
    ///     .update_appliance_config()
    ///     .project("acme")
    ///     .config_key("exchange-support")
    ///     .document(config)
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    UpdateApplianceConfig, update_appliance_config,
    PUT "/api/_private/appliance-configs/{project}/{config_key}" -> ApplianceConfigUpdateResponse,
    [project: String, config_key: String], document: RawBody
}

upload! {
    /// `upload_files`: sends a file to the platform.
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let file = RawBody::from_path("taxonomy.xlsx", "application/octet-stream").await?;
    /// client.upload_files().file(file).send().await?;
    /// # Ok(()) }
    /// ```
    UploadFiles, upload_files,
    POST "/api/_private/files/upload" -> OkResponse,
    [], file: RawBody
}

upload! {
    /// `detect_csv_format`: reads a CSV file and reports its columns,
    /// encoding and delimiter, storing nothing, e.g. to map the columns
    /// before [`SyncCommentsFromCsv`].
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let csv = RawBody::from_path("exports/tickets.csv", "text/csv").await?;
    /// let format = client.detect_csv_format().csv(csv).send().await?;
    /// println!("{:?}", format.into_inner());
    /// # Ok(()) }
    /// ```
    DetectCsvFormat, detect_csv_format,
    PUT "/api/_private/sources/sniff-csv" -> CsvFormatResponse,
    [], csv: RawBody
}

upload! {
    /// `sync_comments_from_csv`: creates or replaces comments of a source
    /// from the rows of a CSV file, like `sync_comments` does from JSON; the
    /// answer counts the comments by outcome.
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let csv = RawBody::from_path("exports/tickets.csv", "text/csv").await?;
    /// let synced = client
    ///     .sync_comments_from_csv()
    ///     .project("acme")
    ///     .source_name("tickets")
    ///     .csv(csv)
    ///     .send()
    ///     .await?;
    /// println!("{} new, {} updated", synced.new, synced.updated);
    /// # Ok(()) }
    /// ```
    SyncCommentsFromCsv, sync_comments_from_csv,
    PUT "/api/_private/sources/{project}/{source_name}/sync-csv" -> SyncCommentsResponse,
    [project: String, source_name: String], csv: RawBody
}

/// The one request every upload makes: `body` with its `Content-Type`
/// (and `Content-Length` when given; reqwest sets it for a body in memory),
/// through the generated client's hooks, answered in JSON.
#[allow(clippy::too_many_arguments)]
async fn send_body<T: DeserializeOwned>(
    client: &Client,
    options: crate::CallOptions,
    operation: &'static str,
    method: reqwest::Method,
    path: String,
    content_type: HeaderValue,
    len: Option<u64>,
    body: reqwest::Body,
) -> Result<Response<T>, Error> {
    client
        .send_with(options, |c| async move {
            let mut request = c
                .client()
                .request(method, format!("{}{path}", c.baseurl()))
                .header(ACCEPT, HeaderValue::from_static("application/json"))
                .header(CONTENT_TYPE, content_type);
            if let Some(len) = len {
                request = request.header(CONTENT_LENGTH, len);
            }
            let request = request.body(body).build()?;
            json_response(execute(c, request, operation).await?).await
        })
        .await
}

/// A body that cannot be sent: nothing was.
fn invalid(operation: &'static str, message: String) -> Error {
    Error::InvalidRequest {
        operation: Some(operation),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_body_is_one_file_part_with_name_type_and_content() {
        let upload = Upload::new("a \"b\".pdf", "application/pdf", b"%PDF\r\n--x".as_slice());
        let (content_type, body) = upload.encode().await.unwrap();
        let content_type = content_type.to_str().unwrap();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--x\r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), expected);
    }

    #[tokio::test]
    async fn bad_names_and_types_are_refused() {
        for (name, content_type, needle) in [
            ("", "text/plain", "empty"),
            ("a\r\nb.txt", "text/plain", "control"),
            ("a.txt", "not a type", "media type"),
        ] {
            let error = Upload::new(name, content_type, Vec::new())
                .encode()
                .await
                .unwrap_err();
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn segments_are_checked_and_encoded() {
        assert_eq!(segment("op", "x", "a b/c").unwrap(), "a%20b%2Fc");
        for bad in ["", ".", ".."] {
            let error = segment("op", "comment_id", bad).unwrap_err();
            assert!(matches!(
                error,
                Error::InvalidRequest {
                    operation: Some("op"),
                    ..
                }
            ));
            assert!(error.to_string().contains("comment_id"), "{error}");
        }
    }

    #[test]
    fn debug_shows_the_size_not_the_content() {
        let upload = Upload::new("secret.txt", "text/plain", b"top secret".as_slice());
        let debug = format!("{upload:?}");
        assert!(
            debug.contains("len: 10") && !debug.contains("top secret"),
            "{debug}"
        );
    }
}
