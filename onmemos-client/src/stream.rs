//! Lazy streams: every item of a paginated list, a command's output as it is produced, and
//! a session's events as they happen.
//!
//! A list stream fetches its first page when it is first polled and the next page only once
//! the items of the current one have been taken, so `take(3)` costs one request.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use onmemos_types::api::{
    ListParams, ObjectListParams, Page, SessionListParams, TemplateListParams, TransferListParams,
};

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};

/// A lazily fetched sequence of items, or of lines of a streamed answer.
pub type Items<T> = BoxStream<'static, Result<T>>;

/// Query parameters of a list that pages on with an opaque `cursor`.
pub trait Cursor: Serialize + Clone + Send + Sync + 'static {
    /// The cursor these parameters ask for.
    fn cursor(&self) -> Option<&str>;
    /// The same parameters for the page at `cursor`.
    fn set_cursor(&mut self, cursor: Option<String>);
}

macro_rules! cursor {
    ($($params:ty),* $(,)?) => {$(
        impl Cursor for $params {
            fn cursor(&self) -> Option<&str> {
                self.cursor.as_deref()
            }
            fn set_cursor(&mut self, cursor: Option<String>) {
                self.cursor = cursor;
            }
        }
    )*};
}

cursor!(
    ListParams,
    SessionListParams,
    TemplateListParams,
    TransferListParams,
    ObjectListParams,
);

/// What follows a page.
pub(crate) enum Next<P> {
    /// The page these parameters ask for.
    Page(P),
    /// Nothing: the list cannot go on past this page, for this reason (its items are good).
    Fail(Error),
    /// Nothing: this was the last page.
    Done,
}

/// Every item of the list at `path`, one request per page, from the page `params` asks for:
/// `split` takes the parameters of a page and its answer and gives the page's items and what
/// follows them.
pub(crate) fn walk<P, R, T>(
    client: Client,
    path: String,
    params: P,
    split: impl Fn(P, R) -> (Vec<T>, Next<P>) + Send + Sync + 'static,
) -> Items<T>
where
    P: Serialize + Send + Sync + 'static,
    R: DeserializeOwned + Send + 'static,
    T: Send + 'static,
{
    let split = std::sync::Arc::new(split);
    stream::try_unfold(Next::Page(params), move |next| {
        let (client, path, split) = (client.clone(), path.clone(), split.clone());
        async move {
            let params = match next {
                Next::Page(params) => params,
                Next::Fail(error) => return Err(error),
                Next::Done => return Ok(None),
            };
            let answer: R = client.get_with(&path, &params).await?;
            let (items, next) = split(params, answer);
            Ok(Some((stream::iter(items.into_iter().map(Ok)), next)))
        }
    })
    .try_flatten()
    .boxed()
}

/// Every item of the list at `path`, paging on with the `next_cursor` of each page.
pub(crate) fn pages<P: Cursor, T: DeserializeOwned + Send + 'static>(
    client: Client,
    path: String,
    params: P,
) -> Items<T> {
    let shown = path.clone();
    walk(client, path, params, move |mut params: P, page: Page<T>| {
        let next = match page.next_cursor {
            // A server that hands back the cursor it was given would loop forever.
            Some(next) if params.cursor() == Some(next.as_str()) => Next::Fail(Error::new(
                ErrorKind::Decode,
                format!("{shown} returned the cursor it was asked for ({next:?})"),
            )),
            Some(next) => {
                params.set_cursor(Some(next));
                Next::Page(params)
            }
            None => Next::Done,
        };
        (page.items, next)
    })
}

/// The lines of a streamed answer, without their line breaks (a last line without one
/// included); each is at most `max_line` bytes.
pub(crate) fn lines(
    body: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    max_line: usize,
) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
    let state = (body.boxed(), BytesMut::new(), false);
    stream::try_unfold(state, move |(mut body, mut buffer, mut ended)| async move {
        loop {
            if let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let mut line = buffer.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(Some((line.freeze(), (body, buffer, ended))));
            }
            if ended {
                if buffer.is_empty() {
                    return Ok(None);
                }
                // A last line ends like any other: without its `\r`.
                let mut line = buffer.split();
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                return Ok(Some((line.freeze(), (body, buffer, ended))));
            }
            if buffer.len() > max_line {
                return Err(Error::new(
                    ErrorKind::Decode,
                    format!("a streamed line is longer than {max_line} bytes"),
                ));
            }
            match body.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(Error::transport(e)),
                None => ended = true,
            }
        }
    })
}

/// The longest line of a streamed answer the client accepts.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Newline-delimited JSON from `req`, one item per line.
pub(crate) async fn ndjson<T: DeserializeOwned + Send + 'static>(
    client: &Client,
    req: reqwest::RequestBuilder,
) -> Result<Items<T>> {
    let resp = client.execute(req.timeout(FOLLOW_TIMEOUT)).await?;
    Ok(lines(resp.bytes_stream(), MAX_LINE)
        .try_filter(|line| futures::future::ready(!line.is_empty()))
        .and_then(
            |line| async move { serde_json::from_slice(&line).map_err(|e| Error::decode(e, 200)) },
        )
        .boxed())
}

/// The `data` of each server-sent event from `req`, parsed as JSON (comments and keep-alives
/// skipped).
pub(crate) async fn server_sent<T: DeserializeOwned + Send + 'static>(
    client: &Client,
    req: reqwest::RequestBuilder,
) -> Result<Items<T>> {
    let resp = client
        .execute(
            req.header(reqwest::header::ACCEPT, "text/event-stream")
                .timeout(FOLLOW_TIMEOUT),
        )
        .await?;
    let events = stream::try_unfold(
        (lines(resp.bytes_stream(), MAX_LINE).boxed(), Vec::new()),
        |(mut lines, mut data)| async move {
            while let Some(line) = lines.try_next().await? {
                if line.is_empty() {
                    if data.is_empty() {
                        continue;
                    }
                    let event = serde_json::from_slice(&data).map_err(|e| Error::decode(e, 200))?;
                    data.clear();
                    return Ok(Some((event, (lines, data))));
                }
                if let Some(value) = line.strip_prefix(b"data:") {
                    if !data.is_empty() {
                        data.push(b'\n');
                    }
                    data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
                }
                // `event:`, `id:`, `retry:` and `:` comments carry nothing the JSON lacks.
            }
            Ok(None)
        },
    );
    Ok(events.boxed())
}

/// How long a followed stream (exec output, events) may stay open.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&'static str]) -> Vec<String> {
        let body = stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, reqwest::Error>(Bytes::from_static(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        futures::executor::block_on(lines(body, 64).try_collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    proptest::proptest! {
        /// However a body is cut into chunks, the lines (of NDJSON, of server-sent events) are
        /// the same: the body split at `\n`, a trailing `\r` dropped, a last unterminated line
        /// kept.
        #[test]
        fn lines_do_not_depend_on_chunking(body in "[a\r\n{}\"é]{0,60}", cuts in proptest::collection::vec(0usize..60, 0..8)) {
            let bytes = body.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().filter(|c| *c <= bytes.len()).collect();
            points.sort_unstable();
            points.dedup();
            let mut chunks = Vec::new();
            let mut from = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                chunks.push(Ok::<_, reqwest::Error>(Bytes::copy_from_slice(&bytes[from..p])));
                from = p;
            }
            let got: Vec<Bytes> = futures::executor::block_on(
                lines(stream::iter(chunks), 1024).try_collect::<Vec<_>>(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let mut want: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            if want.last().is_some_and(|l| l.is_empty()) {
                want.pop();
            }
            let want: Vec<&[u8]> = want
                .into_iter()
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .collect();
            proptest::prop_assert_eq!(got.iter().map(|b| b.as_ref()).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn lines_are_split_across_chunks() {
        assert_eq!(
            split(&["a", "b\nc", "d\r\n\n", "e"]),
            vec!["ab", "cd", "", "e"]
        );
        assert_eq!(split(&["x\n"]), vec!["x"]);
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let body = stream::iter(vec![Ok::<_, reqwest::Error>(Bytes::from(vec![b'a'; 100]))]);
        let err = futures::executor::block_on(lines(body, 64).try_collect::<Vec<_>>())
            .err()
            .unwrap_or_else(|| panic!("a 100-byte line passed a 64-byte bound"));
        assert_eq!(err.kind(), ErrorKind::Decode);
    }
}
