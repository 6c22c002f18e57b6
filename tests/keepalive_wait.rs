//! The vendored pingora-core patch for reused HTTP/1.1 connections
//! (vendor/README.md): between requests a keep-alive connection waits in a
//! small future for the next request's first byte, and only then does
//! `process_new_http` (the whole proxy state machine) run. Driven through
//! pingora's public `ServerApp` over a real loopback TCP connection.

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::server::ShutdownWatch;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Answers each request with its path; keep-alive `keepalive` seconds.
struct Echo {
    calls: AtomicUsize,
    keepalive: u64,
    /// Starts the server's shutdown right after the first answer, then lingers.
    shut_after_first: Option<Arc<watch::Sender<bool>>>,
}

#[async_trait]
impl HttpServerApp for Echo {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !session.read_request().await.ok()? {
            return None;
        }
        session.set_keepalive(Some(self.keepalive));
        // As dockgate does (proxy/transport.rs): pipelined bytes carry over as a prefix.
        session.set_pipelining_enabled(true);
        let body = session.req_header().uri.path().to_string();
        let mut resp = ResponseHeader::build(200, None).ok()?;
        resp.insert_header("content-length", body.len().to_string())
            .ok()?;
        session.write_response_header(Box::new(resp)).await.ok()?;
        session
            .write_response_body(body.into_bytes().into(), true)
            .await
            .ok()?;
        let settings = HttpPersistentSettings::for_session(&session);
        let reusable = session.finish().await.ok()??;
        if let Some(tx) = &self.shut_after_first {
            if self.calls.load(Ordering::SeqCst) == 1 {
                tx.send_replace(true);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Some(ReusedHttpStream::from_reusable_stream(reusable, settings))
    }
}

struct Served {
    app: Arc<Echo>,
    client: TcpStream,
    done: tokio::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

/// A loopback TCP connection: the client end, and the server end as pingora's stream.
async fn connection() -> (TcpStream, pingora::protocols::Stream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, Box::new(L4Stream::from(server)))
}

fn echo(keepalive: u64) -> Arc<Echo> {
    Arc::new(Echo {
        calls: AtomicUsize::new(0),
        keepalive,
        shut_after_first: None,
    })
}

async fn serve(keepalive: u64) -> Served {
    let (client, stream) = connection().await;
    let app = echo(keepalive);
    let (tx, rx) = watch::channel(false);
    let a = app.clone();
    let done = tokio::spawn(async move {
        let _ = a.process_new(stream, &rx).await;
    });
    Served {
        app,
        client,
        done,
        shutdown: tx,
    }
}

async fn answer(client: &mut TcpStream, path: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).ends_with(path) {
        let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer to {path} within 10 s"))
            .unwrap();
        assert!(n > 0, "connection closed before the answer to {path}");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn reused_connection_builds_no_session_until_a_byte_arrives() {
    let mut s = serve(60).await;
    s.client.write_all(get("/one").as_bytes()).await.unwrap();
    assert!(answer(&mut s.client, "/one")
        .await
        .starts_with("HTTP/1.1 200"));
    settle().await;
    assert_eq!(
        s.app.calls.load(Ordering::SeqCst),
        1,
        "idle: no second session yet"
    );

    // A request split across writes still parses: the first byte becomes the prefix.
    let req = get("/two");
    s.client.write_all(&req.as_bytes()[..1]).await.unwrap();
    settle().await;
    s.client.write_all(&req.as_bytes()[1..]).await.unwrap();
    assert!(answer(&mut s.client, "/two")
        .await
        .starts_with("HTTP/1.1 200"));
    assert_eq!(s.app.calls.load(Ordering::SeqCst), 2);

    // Two pipelined requests in one write are both answered (the second arrives as a
    // prefix, so nothing waits for a byte that already came).
    let both = format!("{}{}", get("/three"), get("/four"));
    s.client.write_all(both.as_bytes()).await.unwrap();
    let got = answer(&mut s.client, "/four").await;
    assert!(got.contains("/three") && got.contains("/four"), "{got}");

    // The client closing ends the connection task without another session.
    let before = s.app.calls.load(Ordering::SeqCst);
    drop(s.client);
    tokio::time::timeout(Duration::from_secs(5), s.done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.app.calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn idle_wait_ends_at_the_keepalive_timeout() {
    let mut s = serve(1).await;
    s.client.write_all(get("/one").as_bytes()).await.unwrap();
    answer(&mut s.client, "/one").await;
    tokio::time::timeout(Duration::from_secs(5), s.done)
        .await
        .expect("closed by the 1 s keep-alive timeout")
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.client.read(&mut buf).await.unwrap(), 0, "server closed");
    assert_eq!(s.app.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn idle_wait_ends_at_shutdown() {
    let mut s = serve(60).await;
    s.client.write_all(get("/one").as_bytes()).await.unwrap();
    answer(&mut s.client, "/one").await;
    settle().await;
    s.shutdown.send_replace(true);
    tokio::time::timeout(Duration::from_secs(5), s.done)
        .await
        .expect("idle connection closed at shutdown")
        .unwrap();
    assert_eq!(s.app.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_sent_before_shutdown_reaches_the_wait_is_served() {
    let (mut client, stream) = connection().await;
    let (tx, rx) = watch::channel(false);
    let app = Arc::new(Echo {
        calls: AtomicUsize::new(0),
        keepalive: 60,
        shut_after_first: Some(Arc::new(tx)),
    });
    let a = app.clone();
    let done = tokio::spawn(async move {
        let _ = a.process_new(stream, &rx).await;
    });
    client.write_all(get("/one").as_bytes()).await.unwrap();
    answer(&mut client, "/one").await;
    // Shutdown has begun; /two is in the socket before the connection is reused, so it
    // is answered (as pingora-proxy's biased read does), and then the connection closes.
    client.write_all(get("/two").as_bytes()).await.unwrap();
    assert!(answer(&mut client, "/two")
        .await
        .starts_with("HTTP/1.1 200"));
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("closed once idle during shutdown")
        .unwrap();
    assert_eq!(app.calls.load(Ordering::SeqCst), 2);
}

/// Every HTTP/1.1 connection holds this future for its whole life; the h2 branch and the
/// 680-byte session are kept out of it (4,048 bytes before the patch, 616 after).
#[tokio::test]
async fn connection_future_stays_small() {
    let (_client, stream) = connection().await;
    let app = echo(1);
    let (_tx, rx) = watch::channel(false);
    let fut = app.process_new(stream, &rx);
    let size = std::mem::size_of_val(&*fut);
    assert!(size <= 1024, "process_new's future is {size} bytes");
}
