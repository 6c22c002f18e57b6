//! `tags/list` answers name the image as the backend does; the client
//! asked for it by its own name (`<key>/app` on the path listener, or
//! without the repository's `name_prefix`). Such a page is held, renamed
//! by `View::tags_list` at its end, and sent chunked.

use super::Ctx;
use crate::oci::Endpoint;
use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// Largest page held; a bigger one (no `n` asked, tens of thousands of
/// tags) goes out unchanged rather than growing memory.
const HOLD_LIMIT: usize = 4 << 20;

pub fn hold(s: &Session, resp: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
    let tags = ctx
        .target
        .as_ref()
        .is_some_and(|t| t.endpoint == Some(Endpoint::TagsList));
    let get_ok = resp.status == StatusCode::OK && s.req_header().method == Method::GET;
    if !(tags && get_ok) || ctx.replace_body.is_some() {
        return Ok(());
    }
    if !ctx.view.as_ref().is_some_and(|v| v.view().renames_images()) {
        return Ok(());
    }
    resp.remove_header("content-length");
    resp.insert_header("Transfer-Encoding", "chunked")?;
    ctx.tags_body = Some(BytesMut::new());
    Ok(())
}

pub fn rename(body: &mut Option<Bytes>, eos: bool, ctx: &mut Ctx) {
    let Some(held) = ctx.tags_body.as_mut() else {
        return;
    };
    if let Some(b) = body.take() {
        held.extend_from_slice(&b);
    }
    if held.len() > HOLD_LIMIT {
        *body = ctx.tags_body.take().map(BytesMut::freeze);
        return;
    }
    if !eos {
        return;
    }
    let held = ctx.tags_body.take().unwrap_or_default().freeze();
    let renamed = ctx.view.as_ref().and_then(|v| v.view().tags_list(&held));
    *body = Some(renamed.map_or(held, Bytes::from));
}
