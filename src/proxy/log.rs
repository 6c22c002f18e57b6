//! The logging phase: metrics and the access log line for one request.

use super::Ctx;
use crate::observe::access_log::Record;
use crate::observe::addr;
use crate::observe::audit;
use crate::observe::operation::method_label;
use crate::observe::Operation;
use crate::policy::Rule;
use crate::state::Shared;
use pingora::proxy::Session;
use time::format_description::well_known::Rfc3339;

pub fn record(shared: &Shared, s: &Session, ctx: &Ctx) {
    // A relayed `100 Continue` is not the outcome.
    let status = match s.response_written() {
        Some(r) if !r.status.is_informational() => r.status.as_u16(),
        _ => ctx.failure_status.unwrap_or(0),
    };
    let client = s.client_addr().map(|a| {
        a.as_inet()
            .map_or_else(|| a.to_string(), |i| addr::socket(*i))
    });
    let done = Done {
        status,
        bytes_out: s.body_bytes_sent() as u64,
        client: client.as_deref().unwrap_or(""),
    };
    record_done(shared, s.req_header(), &done, ctx);
}

/// How a request ended, as the log and metrics count it.
pub struct Done<'a> {
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes_out: u64,
    /// The client's address and port (`observe::addr::socket`).
    pub client: &'a str,
}

/// Metrics and the access log line for a request, from its head and end.
pub fn record_done(shared: &Shared, req: &http::request::Parts, done: &Done<'_>, ctx: &Ctx) {
    let m = &shared.metrics;
    let status = done.status;
    let op = ctx.notes.operation.unwrap_or(Operation::Other);
    let repo = ctx.notes.repo_label.as_str();
    let method = req.method.clone();
    let elapsed = ctx.started.elapsed();
    let bytes_out = done.bytes_out;
    let code = status.to_string();
    m.requests
        .with_label_values(&[repo, op.as_str(), method_label(&method), &code])
        .inc();
    m.duration
        .with_label_values(&[repo, op.as_str()])
        .observe(elapsed.as_secs_f64());
    m.received.with_label_values(&[repo]).inc_by(ctx.bytes_in);
    m.sent.with_label_values(&[repo]).inc_by(bytes_out);
    match (op, status) {
        (Operation::ManifestGet, 200) => m.pulls.with_label_values(&[repo]).inc(),
        (Operation::ManifestPut, 201) => m.pushes.with_label_values(&[repo]).inc(),
        _ => {}
    }
    let schema1 = match ctx.notes.refused {
        Some(Rule::Schema1Push) => Some("push"),
        Some(Rule::Schema1Pull) => Some("pull"),
        _ => None,
    };
    if let Some(rule) = ctx.notes.refused {
        m.policy_refused
            .with_label_values(&[repo, rule.as_str()])
            .inc();
    }
    if let Some(dir) = schema1 {
        m.schema1_refused.with_label_values(&[repo, dir]).inc();
    }
    let backend = ctx.backend.as_ref().map(|b| b.name.as_str()).unwrap_or("");
    if let Some(kind) = ctx.upstream_error {
        m.upstream_errors.with_label_values(&[backend, kind]).inc();
    }
    let image = ctx.target.as_ref().map(|t| t.image.as_str()).unwrap_or("");
    let reference = audit::reference(
        ctx.target.as_ref().and_then(|t| t.endpoint.as_ref()),
        req.uri.query(),
    );
    let header = |name: http::header::HeaderName| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    // Who tried, when credentials were refused: a token POST names the
    // user in its form; Basic carries it in the header.
    let attempted = match (&ctx.notes.user, status) {
        (None, 401 | 429) => ctx
            .notes
            .attempted_user
            .clone()
            .or_else(|| audit::basic_user(header(http::header::AUTHORIZATION))),
        _ => None,
    };
    // This request still counts itself as in flight.
    let alone = shared.inflight.load(std::sync::atomic::Ordering::Relaxed) <= 1;
    shared.access_log.write(
        &Record {
            time: time::OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            request_id: &ctx.request_id,
            client: done.client,
            user: ctx.notes.user.as_deref().unwrap_or(""),
            attempted_user: attempted.as_deref().unwrap_or(""),
            workload: ctx.notes.workload.as_deref().unwrap_or(""),
            user_agent: header(http::header::USER_AGENT),
            repository: repo,
            image,
            reference: &reference,
            operation: op.as_str(),
            method: method.as_str(),
            status,
            bytes_in: ctx.bytes_in,
            bytes_out,
            duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            backend,
            backend_status: ctx.backend_status,
            refused_by: ctx.notes.refused.map_or("", |r| r.as_str()),
        },
        alone,
    );
}
