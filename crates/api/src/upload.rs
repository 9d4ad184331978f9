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
//!     .uploads()
//!     .document("18ba5ce699f8da1f", Upload::new("invoice.pdf", "application/pdf", pdf))
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
use crate::request::{execute, json_response, segment};

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
    /// let synced = client.uploads().sync_comments_from_csv("acme", "tickets", csv).await?;
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

/// The hand-written uploads, from [`Client::uploads`].
#[derive(Clone, Copy, Debug)]
pub struct Uploads<'a> {
    client: &'a Client,
}

impl Client {
    /// The uploads the generated client cannot make: multipart files
    /// (attachment content, call audio, documents) and raw bodies (CSV
    /// files, appliance configurations). See [`Uploads`].
    pub fn uploads(&self) -> Uploads<'_> {
        Uploads { client: self }
    }
}

impl Uploads<'_> {
    /// Stores the content of attachment number `attachment_index` (from 0,
    /// its position in the comment's `attachments`) of a comment already
    /// synced with that attachment's metadata (`upload_comment_attachment`).
    /// The answer's `content_hash` matches the attachment's.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), cm_api::Error> {
    /// let stored = client
    ///     .uploads()
    ///     .comment_attachment(
    ///         "18ba5ce699f8da1f",
    ///         "msg-42",
    ///         0,
    ///         Upload::new("report.pdf", "application/pdf", b"%PDF-1.7 ...".as_slice()),
    ///     )
    ///     .await?;
    /// println!("stored, hash {}", stored.content_hash);
    /// # Ok(()) }
    /// ```
    pub async fn comment_attachment(
        &self,
        source_id: &str,
        comment_id: &str,
        attachment_index: usize,
        file: Upload,
    ) -> Result<Response<UploadAttachmentResponse>, Error> {
        const OPERATION: &str = "upload_comment_attachment";
        let path = format!(
            "/api/_private/sources/id:{}/comments/{}/attachments/{attachment_index}",
            segment(OPERATION, "source_id", source_id)?,
            segment(OPERATION, "comment_id", comment_id)?,
        );
        self.put(OPERATION, path, file).await
    }

    /// Attaches the audio recording of a call to its comment
    /// (`upload_comment_audio`).
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let audio = Upload::from_path("calls/0042.mp3", "audio/mpeg").await?;
    /// client.uploads().comment_audio("18ba5ce699f8da1f", "call-0042", audio).await?;
    /// # Ok(()) }
    /// ```
    pub async fn comment_audio(
        &self,
        source_id: &str,
        comment_id: &str,
        file: Upload,
    ) -> Result<Response<OkResponse>, Error> {
        const OPERATION: &str = "upload_comment_audio";
        let path = format!(
            "/api/_private/sources/id:{}/comments/{}/audio",
            segment(OPERATION, "source_id", source_id)?,
            segment(OPERATION, "comment_id", comment_id)?,
        );
        self.put(OPERATION, path, file).await
    }

    /// Stores a document (e.g. a PDF) in an IXP source, which creates a
    /// comment for it (`upload_document`). The answer names the comment and
    /// the document's attachment reference; see the module documentation
    /// on retries.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let document = Upload::from_path("invoice.pdf", "application/pdf").await?;
    /// let stored = client.uploads().document("18ba5ce699f8da1f", document).await?;
    /// println!("comment {}, attachment {:?}", stored.comment_id, stored.attachment_ref);
    /// # Ok(()) }
    /// ```
    pub async fn document(
        &self,
        source_id: &str,
        file: Upload,
    ) -> Result<Response<UploadDocumentResponse>, Error> {
        const OPERATION: &str = "upload_document";
        let path = format!(
            "/api/_private/sources/id:{}/documents",
            segment(OPERATION, "source_id", source_id)?,
        );
        self.put(OPERATION, path, file).await
    }

    /// Stores the content of attachment number `attachment_index` (from 0)
    /// of a raw email already added to a bucket with that attachment's
    /// metadata (`upload_email_attachment`).
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let file = Upload::from_path("mail/statement.pdf", "application/pdf").await?;
    /// let stored = client
    ///     .uploads()
    ///     .email_attachment("5c1d9e0a7f3b2e48", "AAMkADg3", 0, file)
    ///     .await?;
    /// println!("stored, hash {}", stored.content_hash);
    /// # Ok(()) }
    /// ```
    pub async fn email_attachment(
        &self,
        bucket_id: &str,
        email_id: &str,
        attachment_index: usize,
        file: Upload,
    ) -> Result<Response<UploadAttachmentResponse>, Error> {
        const OPERATION: &str = "upload_email_attachment";
        let path = format!(
            "/api/_private/buckets/id:{}/emails/{}/attachments/{attachment_index}",
            segment(OPERATION, "bucket_id", bucket_id)?,
            segment(OPERATION, "email_id", email_id)?,
        );
        self.put(OPERATION, path, file).await
    }

    /// Sends a document to a model version (a number, or `latest`) of an
    /// IXP project for extraction (`upload_ixp_document`). Each upload is a
    /// new document, so, like [`document`](Self::document), it is never
    /// retried blindly.
    ///
    /// ```no_run
    /// use cm_api::upload::Upload;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let invoice = Upload::from_path("invoice.pdf", "application/pdf").await?;
    /// let uploaded = client
    ///     .uploads()
    ///     .ixp_document("3f2a9c1e-7b4d-4e8a-9c2f-1d5e6a7b8c9d", "latest", invoice)
    ///     .await?;
    /// println!("document {:?}", uploaded.document);
    /// # Ok(()) }
    /// ```
    pub async fn ixp_document(
        &self,
        project_uuid: &str,
        model_version: &str,
        file: Upload,
    ) -> Result<Response<IxpDocumentUploadResponse>, Error> {
        const OPERATION: &str = "upload_ixp_document";
        let path = format!(
            "/api/_private/ixp/projects/{}/models/{}/documents",
            segment(OPERATION, "project_uuid", project_uuid)?,
            segment(OPERATION, "model_version", model_version)?,
        );
        self.put(OPERATION, path, file).await
    }

    /// Replaces the appliance configuration stored under `config_key` in
    /// `project` with `document`, the raw configuration text
    /// (`update_appliance_config`). `get_appliance_config` downloads it.
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let config = RawBody::from_path("exchange-support.json", "application/json").await?;
    /// client
    ///     .uploads()
    ///     .appliance_config("acme", "exchange-support", config)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn appliance_config(
        &self,
        project: &str,
        config_key: &str,
        document: RawBody,
    ) -> Result<Response<ApplianceConfigUpdateResponse>, Error> {
        const OPERATION: &str = "update_appliance_config";
        let path = format!(
            "/api/_private/appliance-configs/{}/{}",
            segment(OPERATION, "project", project)?,
            segment(OPERATION, "config_key", config_key)?,
        );
        self.raw(OPERATION, reqwest::Method::PUT, path, document)
            .await
    }

    /// Sends a file to the platform (`upload_files`).
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let file = RawBody::from_path("taxonomy.xlsx", "application/octet-stream").await?;
    /// client.uploads().file(file).await?;
    /// # Ok(()) }
    /// ```
    pub async fn file(&self, file: RawBody) -> Result<Response<OkResponse>, Error> {
        self.raw(
            "upload_files",
            reqwest::Method::POST,
            "/api/_private/files/upload".to_owned(),
            file,
        )
        .await
    }

    /// Reads a CSV file and reports its columns, encoding and delimiter,
    /// storing nothing (`detect_csv_format`), e.g. to map the columns
    /// before [`sync_comments_from_csv`](Self::sync_comments_from_csv).
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let csv = RawBody::from_path("exports/tickets.csv", "text/csv").await?;
    /// let format = client.uploads().detect_csv_format(csv).await?;
    /// println!("{:?}", format.into_inner());
    /// # Ok(()) }
    /// ```
    pub async fn detect_csv_format(
        &self,
        csv: RawBody,
    ) -> Result<Response<CsvFormatResponse>, Error> {
        self.raw(
            "detect_csv_format",
            reqwest::Method::PUT,
            "/api/_private/sources/sniff-csv".to_owned(),
            csv,
        )
        .await
    }

    /// Creates or replaces comments of a source from the rows of a CSV file
    /// (`sync_comments_from_csv`), like `sync_comments` does from JSON; the
    /// answer counts the comments by outcome.
    ///
    /// ```no_run
    /// use cm_api::upload::RawBody;
    ///
    /// # async fn run(client: cm_api::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let csv = RawBody::from_path("exports/tickets.csv", "text/csv").await?;
    /// let synced = client.uploads().sync_comments_from_csv("acme", "tickets", csv).await?;
    /// println!("{} new, {} updated", synced.new, synced.updated);
    /// # Ok(()) }
    /// ```
    pub async fn sync_comments_from_csv(
        &self,
        project: &str,
        source_name: &str,
        csv: RawBody,
    ) -> Result<Response<SyncCommentsResponse>, Error> {
        const OPERATION: &str = "sync_comments_from_csv";
        let path = format!(
            "/api/_private/sources/{}/{}/sync-csv",
            segment(OPERATION, "project", project)?,
            segment(OPERATION, "source_name", source_name)?,
        );
        self.raw(OPERATION, reqwest::Method::PUT, path, csv).await
    }

    /// Sends a raw body: the file itself, with its media type and, when
    /// known, its length.
    async fn raw<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: String,
        body: RawBody,
    ) -> Result<Response<T>, Error> {
        let (content_type, len, body) = body
            .into_body()
            .map_err(|message| invalid(operation, message))?;
        self.send_body(operation, method, path, content_type, len, body)
            .await
    }

    /// Sends `file` as a one-part multipart body.
    async fn put<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: String,
        file: Upload,
    ) -> Result<Response<T>, Error> {
        let (content_type, body) = file
            .encode()
            .await
            .map_err(|message| invalid(operation, message))?;
        self.send_body(
            operation,
            reqwest::Method::PUT,
            path,
            content_type,
            None,
            body.into(),
        )
        .await
    }

    /// The one request every upload makes: `body` with its `Content-Type`
    /// (and `Content-Length` when given; reqwest sets it for a body in
    /// memory), through the generated client's hooks, answered in JSON.
    async fn send_body<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: String,
        content_type: HeaderValue,
        len: Option<u64>,
        body: reqwest::Body,
    ) -> Result<Response<T>, Error> {
        self.client
            .send(|c| async move {
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
