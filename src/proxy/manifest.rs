//! Bodies dockgate reads itself. Manifest PUTs: the body (≤ 4 MiB) is read whole, classified and checked
//! before anything reaches the backend, then sent by dockgate itself. A
//! refused push therefore leaves nothing on the backend, and bodies above
//! pingora's 64 KiB replay buffer are forwarded intact. Also the small
//! bodies own endpoints take.

use super::{edits, respond, transport, Ctx, Gateway};
use crate::endpoint::SMALL_BODY;
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline;
use crate::policy::schema1;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use pingora::proxy::Session;
use pingora::Result;

/// Largest backend answer to a manifest PUT worth relaying (errors are small).
const ANSWER_LIMIT: usize = 1 << 20;

impl Gateway {
    /// Handles the whole manifest PUT; always answers the client.
    pub(super) async fn manifest_put(&self, s: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let Some(t) = ctx.target.clone() else {
            return Ok(false);
        };
        let declared = s
            .req_header()
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(len) = declared.filter(|&l| l > MAX_MANIFEST_BYTES) {
            respond::error(s, &schema1::too_large(len)).await?;
            return Ok(true);
        }
        let within = ctx.rt.cfg.server.limits.body_timeout;
        let mut buf = BytesMut::new();
        while let Some(chunk) = transport::read_body(s, within).await? {
            if buf.len() + chunk.len() > MAX_MANIFEST_BYTES {
                let seen = buf.len() + chunk.len();
                respond::error(s, &schema1::too_large(seen)).await?;
                return Ok(true);
            }
            buf.extend_from_slice(&chunk);
        }
        let body = buf.freeze();
        let head = s.req_header();
        let ct = head
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let method = head.method.clone();
        let env = self.env(ctx);
        let refusal = pipeline::on_manifest(&env, &method, &t, ct.as_deref(), &body).await;
        if let Some(r) = refusal {
            ctx.notes.refused = Some(r.rule);
            tracing::info!(repository = %t.repo.key, reason = %r.error.message, "manifest push refused");
            respond::error(s, &r.error).await?;
            return Ok(true);
        }
        self.forward_held(s, ctx, body).await
    }

    /// Reads a small body for an own endpoint; None when it was too large
    /// and a 413 was sent.
    pub(super) async fn read_small_body(&self, s: &mut Session) -> Result<Option<Bytes>> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = s.read_request_body().await? {
            if buf.len() + chunk.len() > SMALL_BODY {
                let e = RegistryError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::SizeInvalid,
                    format!("body larger than {SMALL_BODY} bytes"),
                );
                respond::error(s, &e).await?;
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf.freeze()))
    }

    pub(super) async fn forward_held(
        &self,
        s: &mut Session,
        ctx: &mut Ctx,
        body: Bytes,
    ) -> Result<bool> {
        let Some(b) = ctx.backend.clone() else {
            return Ok(false);
        };
        let rt = ctx.rt.clone();
        let mut up = s.req_header().clone();
        let client_ip = s.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        edits::upstream_request(&mut up, ctx, self.addr.port(), client_ip)?;
        ctx.bytes_in = body.len() as u64;
        let peer = rt.peers.peer(&b);
        match crate::upstream::request(
            &self.shared.connector,
            &peer,
            &b,
            up,
            Some(body),
            ANSWER_LIMIT,
        )
        .await
        {
            Ok((mut head, answer)) => {
                ctx.backend_status = Some(head.status.as_u16());
                edits::downstream_response(&mut head, ctx)?;
                let headers: Vec<(String, String)> = head
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        !crate::upstream::HOP_BY_HOP.contains(&k.as_str())
                            && k.as_str() != "content-length"
                    })
                    .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_string())))
                    .collect();
                let refs: Vec<(&str, String)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                respond::send_raw(s, head.status.as_u16(), &refs, answer).await?;
            }
            Err(e) => {
                let e = e.into_up();
                ctx.upstream_error = Some(edits::error_kind(&e));
                if let Some(err) = edits::failure(&e, ctx) {
                    tracing::warn!(error = %e, "manifest forward failed");
                    respond::error(s, &err).await?;
                }
            }
        }
        Ok(true)
    }
}
