//! The edge cache in the request path: after routing and authorisation, a
//! GET or HEAD by digest in a `cache = true` repository is answered from
//! `cache/` when it can be; anything it declines is proxied as usual.

use super::{respond, Ctx, Gateway};
use crate::cache::rules::{self, Digest, Span};
use crate::cache::{Key, Kind, Lookup, Reader, Request};
use crate::observe::request_id;
use crate::oci::{Endpoint, API_VERSION, API_VERSION_HEADER};
use http::Method;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

/// `Ok(true)` when the cache answered. Runs on a `Forward` step, so the
/// pipeline has authorised the request; paced pulls stay with the proxy.
pub async fn serve(gw: &Gateway, s: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let (Some(cache), Some(t), None) = (gw.shared.cache.get(), &ctx.target, &ctx.pace) else {
        return Ok(false);
    };
    let rt = &ctx.rt;
    let req = s.req_header();
    let head = req.method == Method::HEAD;
    if !t.repo.cache || !(head || req.method == Method::GET) {
        return Ok(false);
    }
    let (kind, reference) = match &t.endpoint {
        Some(Endpoint::Blob(d)) => (Kind::Blob, d),
        Some(Endpoint::Manifest(r)) => (Kind::Manifest, r),
        _ => return Ok(false),
    };
    // Tags are never cached: a re-pushed tag is seen at once.
    let Some(digest) = Digest::parse(reference) else {
        return Ok(false);
    };
    let request = Request {
        key: Key {
            backend: t.repo.backend.name.clone(),
            name: t.repo.backend_name(&t.image),
            digest: digest.clone(),
        },
        kind,
        backend: t.repo.backend.clone(),
        peers: rt.peers.clone(),
        path: t.backend_path.clone(),
        head,
        ranged: req.headers.contains_key("range"),
        repo_label: ctx.notes.repo_label.clone(),
    };
    let (reader, how) = match cache.lookup(request).await {
        Lookup::Bypass => return Ok(false),
        Lookup::Hit(r) => (r, "hit"),
        Lookup::Fill(f) => match f.reader(cache.metrics().clone()).await {
            Some(r) => (r, "fill"),
            None => return Ok(false),
        },
    };
    send(gw, s, ctx, reader, kind, &digest, how).await
}

async fn send(
    gw: &Gateway,
    s: &mut Session,
    ctx: &mut Ctx,
    mut reader: Reader,
    kind: Kind,
    digest: &Digest,
    how: &str,
) -> Result<bool> {
    let Some(t) = &ctx.target else {
        return Ok(false);
    };
    let req = s.req_header();
    if kind == Kind::Manifest {
        let accept: Vec<&str> = req
            .headers
            .get_all("accept")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        // What distribution would not send this client, the backend answers.
        if !rules::manifest_acceptable(&accept, &reader.content_type) {
            return Ok(false);
        }
        // The same answer checks as a proxied one (schema 1 pulls).
        let refused = crate::pipeline::on_answer(
            &gw.env(ctx),
            &req.method,
            t,
            200,
            Some(&reader.content_type),
        );
        if let Some(r) = refused {
            ctx.notes.refused = Some(r.rule);
            respond::error(s, &r.error).await?;
            return Ok(true);
        }
    }
    let head = req.method == Method::HEAD;
    let range = req.headers.get("range").and_then(|v| v.to_str().ok());
    let size = reader.size;
    let (status, len) = match rules::span(range, size) {
        Span::Whole => (200, size),
        Span::Part { start, end } => {
            reader.limit(start, end);
            (206, end - start + 1)
        }
        Span::Unsatisfiable => (416, 0),
    };
    let mut resp = ResponseHeader::build(status, Some(10))?;
    resp.insert_header(API_VERSION_HEADER, API_VERSION)?;
    resp.insert_header("X-Cache", how)?;
    resp.insert_header("Accept-Ranges", "bytes")?;
    if let Some(id) = req.headers.get(request_id::HEADER) {
        resp.insert_header(request_id::HEADER, id.clone())?;
    }
    resp.insert_header("Content-Length", len.to_string())?;
    match rules::span(range, size) {
        Span::Unsatisfiable => {
            resp.insert_header("Content-Range", format!("bytes */{size}"))?;
        }
        Span::Part { start, end } => {
            resp.insert_header("Content-Range", format!("bytes {start}-{end}/{size}"))?;
        }
        Span::Whole => {}
    }
    if status != 416 {
        resp.insert_header("Content-Type", reader.content_type.as_str())?;
        resp.insert_header("Docker-Content-Digest", digest.to_string())?;
        resp.insert_header("Etag", format!("\"{digest}\""))?;
    }
    if head || len == 0 {
        s.write_response_header(Box::new(resp), true).await?;
        return Ok(true);
    }
    s.write_response_header(Box::new(resp), false).await?;
    let repo = ctx.notes.repo_label.clone();
    let bytes = reader.metrics().bytes.with_label_values(&[&repo]);
    loop {
        match reader.next().await {
            Ok(Some(chunk)) => {
                bytes.inc_by(chunk.len() as u64);
                s.write_response_body(Some(chunk.clone()), false).await?;
                reader.recycle(chunk);
            }
            Ok(None) => break,
            Err(e) => {
                // Headers are out: only a broken stream tells the client.
                ctx.failure_status = Some(502);
                return Error::e_explain(ErrorType::ReadError, format!("{e}"));
            }
        }
    }
    s.write_response_body(None, true).await?;
    Ok(true)
}
