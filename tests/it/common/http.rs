//! Plain HTTP/1.1 for the tests: one request (`Connection: close`) read to its end and parsed
//! (chunked bodies undone), async or blocking, and a free port.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// How long [`request`] waits, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A port of 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP response: status, headers (names lower-cased) and body (chunked encoding undone).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The request as bytes: `Connection: close`, the headers, a JSON `Content-Type` and
/// `Content-Length` when a body is given (or the method is POST).
pub fn request_bytes(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    if !body.is_empty() || method == "POST" {
        let _ = write!(
            head,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Writes the request and reads the answer to EOF; the error says where it failed. A server
/// that closes a TLS stream without close_notify still answered.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    req: &[u8],
) -> Result<Response, String> {
    stream
        .write_all(req)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let _ = stream.flush().await;
    let mut buf = Vec::new();
    match stream.read_to_end(&mut buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    parse_response(&buf)
        .ok_or_else(|| format!("not an HTTP answer: {:?}", String::from_utf8_lossy(&buf)))
}

/// One plain HTTP/1.1 request with extra headers and a body (may be empty), answered within
/// `within`; the error says what went wrong.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    within: Duration,
) -> Result<Response, String> {
    let req = request_bytes(&addr.to_string(), method, path, headers, body.as_bytes());
    tokio::time::timeout(within, async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        exchange(&mut stream, &req).await
    })
    .await
    .unwrap_or_else(|_| Err(format!("{method} {path}: no answer within {within:?}")))
}

/// [`send`] within [`REQUEST_TIMEOUT`]; None when no HTTP answer came.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Response> {
    send(addr, method, path, headers, body, REQUEST_TIMEOUT)
        .await
        .ok()
}

/// One GET with extra `headers` (e.g. `Accept`); None when the server does not answer within
/// [`REQUEST_TIMEOUT`] or the answer is not HTTP.
pub async fn http_get(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Option<Response> {
    request(addr, "GET", path_and_query, headers, "").await
}

/// One GET from a thread without a runtime (10 s to answer).
pub fn get_blocking(addr: &str, path: &str) -> Result<Response, String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(&request_bytes(addr, "GET", path, &[], b""))
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    parse_response(&buf)
        .ok_or_else(|| format!("not an HTTP answer: {:?}", String::from_utf8_lossy(&buf)))
}

/// An HTTP/1.1 response as read off the wire (head, then a body that may be chunked); None
/// when it is not one.
pub fn parse_response(buf: &[u8]) -> Option<Response> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).ok()?;
    let raw = &buf[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_line = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a path segment as the SDK
/// sends it, a query value).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
