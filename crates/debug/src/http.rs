//! A small JSON HTTP server over a [`DebugView`] (cargo feature `http`).
//!
//! Routes (ids are shrinker ids, or the `<name>-<id>` directory name):
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /shrinkers` | `[ShrinkerEntry]` |
//! | `GET /shrinkers/<id>` | `ShrinkerEntry` |
//! | `GET /shrinkers/<id>/count` | `CountTable`; with `?format=text` the debugfs text |
//! | `POST /shrinkers/<id>/scan`, body `<memcg> <nid> <nr>` | `ScanResult` |
//! | `GET /memcgs` | `[MemcgEntry]` |
//!
//! Errors are `{"error": "<message>"}` with status 400 (bad input), 404 (no
//! such route, shrinker or memcg), 405 (wrong method) or 413 (body over
//! [`MAX_BODY`] bytes).
//!
//! [`route`] is the whole protocol as a pure function (testable without a
//! socket); [`DebugServer`] feeds it from `tiny_http`, one request at a time
//! on the calling thread, for a bounded number of requests or until
//! [`StopHandle::stop`].

use std::fmt;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use serde::Serialize;
use unishrink_shrinker::ShrinkerId;

use crate::error::DebugError;
use crate::view::DebugView;

/// Largest request body read; a `scan` line is a few dozen bytes.
pub const MAX_BODY: usize = 4096;

/// An HTTP answer, independent of the server library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Response {
    fn json<T: Serialize>(value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(body) => Self {
                status: 200,
                content_type: "application/json",
                body,
            },
            Err(e) => Self::error(500, &e.to_string()),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::json!({ "error": message }).to_string(),
        }
    }

    fn from_debug_error(e: &DebugError) -> Self {
        let status = match e {
            DebugError::NoSuchShrinker(_) | DebugError::NoSuchMemcg(_) => 404,
            DebugError::Registry(_) => 500,
            _ => 400,
        };
        Self::error(status, &e.to_string())
    }
}

/// Parses a path segment naming a shrinker: `<id>` or `<name>-<id>`. The
/// name part is checked against the live shrinker so a stale directory name
/// does not silently address a new shrinker that reused the id.
fn shrinker_id(view: &DebugView, seg: &str) -> Result<ShrinkerId, Response> {
    if let Ok(id) = seg.parse::<u32>() {
        return Ok(ShrinkerId(id));
    }
    let not_found = || Response::error(404, &format!("no shrinker {seg:?}"));
    let (name, id) = seg.rsplit_once('-').ok_or_else(not_found)?;
    let id = ShrinkerId(id.parse().map_err(|_| not_found())?);
    match view.shrinker(id) {
        Ok(e) if e.name == name => Ok(id),
        _ => Err(not_found()),
    }
}

/// Answers one request. `path` may carry a query string; `body` is the
/// request body (used by `scan` only).
pub fn route(view: &DebugView, method: &str, path: &str, body: &str) -> Response {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let want = |m: &str| {
        if method == m {
            Ok(())
        } else {
            Err(Response::error(405, &format!("use {m} for {path}")))
        }
    };
    let result = match segs[..] {
        ["shrinkers"] => want("GET").map(|()| Response::json(&view.shrinkers())),
        ["memcgs"] => want("GET").map(|()| Response::json(&view.memcgs())),
        ["shrinkers", id] => want("GET")
            .and_then(|()| shrinker_id(view, id))
            .map(|id| match view.shrinker(id) {
                Ok(e) => Response::json(&e),
                Err(e) => Response::from_debug_error(&e),
            }),
        ["shrinkers", id, "count"] => {
            want("GET")
                .and_then(|()| shrinker_id(view, id))
                .map(|id| match view.count(id) {
                    Ok(t) if query.split('&').any(|kv| kv == "format=text") => Response {
                        status: 200,
                        content_type: "text/plain; charset=utf-8",
                        body: t.to_string(),
                    },
                    Ok(t) => Response::json(&t),
                    Err(e) => Response::from_debug_error(&e),
                })
        }
        ["shrinkers", id, "scan"] => want("POST").and_then(|()| shrinker_id(view, id)).map(|id| {
            match view.scan_str(id, body) {
                Ok(r) => Response::json(&r),
                Err(e) => Response::from_debug_error(&e),
            }
        }),
        _ => Err(Response::error(404, &format!("no route {path:?}"))),
    };
    result.unwrap_or_else(|e| e)
}

/// Why the server could not start or stopped with an error.
#[derive(Debug)]
pub enum HttpError {
    /// Binding the listening socket failed.
    Bind(String),
    /// The address is not an IP socket address.
    NotIp,
    /// Sending a response failed.
    Io(std::io::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bind(e) => write!(f, "cannot bind: {e}"),
            Self::NotIp => f.write_str("the server is not listening on an IP address"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Makes a running [`DebugServer::serve`] return after its current request.
#[derive(Clone)]
pub struct StopHandle(Arc<tiny_http::Server>);

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StopHandle")
    }
}

impl StopHandle {
    /// Stops one `serve` call (queued: a `serve` that starts later returns
    /// at once). Requests already accepted may be answered first.
    pub fn stop(&self) {
        self.0.unblock();
    }
}

/// A JSON HTTP server over a [`DebugView`]; see the module docs.
pub struct DebugServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    view: DebugView,
}

impl fmt::Debug for DebugServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebugServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl DebugServer {
    /// Binds `addr` (e.g. `"127.0.0.1:0"` for any free loopback port).
    pub fn bind(view: DebugView, addr: impl ToSocketAddrs) -> Result<Self, HttpError> {
        let server = tiny_http::Server::http(addr).map_err(|e| HttpError::Bind(e.to_string()))?;
        let addr = server.server_addr().to_ip().ok_or(HttpError::NotIp)?;
        Ok(Self {
            server: Arc::new(server),
            addr,
            view,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops [`DebugServer::serve`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.server.clone())
    }

    /// Answers requests on the calling thread until `max_requests` were
    /// answered (`None`: no limit) or [`StopHandle::stop`]; returns how many
    /// were answered. A client that goes away mid-answer is not an error.
    pub fn serve(&self, max_requests: Option<usize>) -> Result<usize, HttpError> {
        let mut served = 0;
        while max_requests.map_or(true, |max| served < max) {
            let Ok(mut req) = self.server.recv() else {
                break; // stopped
            };
            let mut body = String::new();
            let read = req
                .as_reader()
                .take(MAX_BODY as u64 + 1)
                .read_to_string(&mut body);
            let resp = match read {
                Err(e) => Response::error(400, &format!("unreadable body: {e}")),
                Ok(n) if n > MAX_BODY => {
                    Response::error(413, &format!("body over {MAX_BODY} bytes"))
                }
                Ok(_) => route(&self.view, req.method().as_str(), req.url(), &body),
            };
            let header = tiny_http::Header::from_bytes("Content-Type", resp.content_type)
                .expect("static ASCII header");
            let out = tiny_http::Response::from_string(resp.body)
                .with_status_code(resp.status)
                .with_header(header);
            served += 1;
            if let Err(e) = req.respond(out) {
                use std::io::ErrorKind::*;
                if !matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted) {
                    return Err(HttpError::Io(e));
                }
            }
        }
        Ok(served)
    }
}
