//! The status page as HTML: a pure function of [`Status`]. Inline CSS and
//! SVG only, no scripts or external assets; the page reloads itself.

use super::{CertificateView, Point, Rates, Status};
use std::fmt::Write;

/// Seconds between the page's reloads.
pub const REFRESH_SECONDS: u32 = 5;

const CSS: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}\
header h1{margin:0;font-size:20px}header span{color:#c4c9d4}\
main{padding:16px 24px;max-width:1300px}\
section{background:#fff;border:1px solid #dde0e6;border-radius:6px;margin:0 0 16px;padding:12px 16px}\
h2{font-size:16px;margin:0 0 8px}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;vertical-align:top}\
th{font-weight:600;color:#5a6272;font-size:12px;text-transform:uppercase}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.cards{display:flex;gap:12px;flex-wrap:wrap}\
.card{border:1px solid #dde0e6;border-radius:6px;padding:8px 14px;min-width:140px}\
.card b{display:block;font-size:22px}\
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px}\
.badge.up,.badge.ok,.card.ok{background:#d5f5dd;color:#136c2e}\
.badge.down,.badge.bad,.card.bad{background:#fbd3d0;color:#a1140a}\
.badge.unknown,.badge.warn{background:#fdecc8;color:#8a5300}\
tr.down td{background:#fff4f3;color:#a1140a}\
code{font-size:12px;color:#3b4252}\
footer{color:#5a6272;padding:0 24px 24px}";

/// The whole page.
pub fn render(s: &Status) -> String {
    let mut h = String::with_capacity(16 << 10);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}dockgate status</title><style>{CSS}</style></head><body>\
         <header><h1>dockgate</h1><span>version {version}</span><span>up {uptime}</span>\
         <span>auth: {auth}</span><span>updated {at}</span></header><main>",
        title = if down_count(s) > 0 { "DOWN · " } else { "" },
        version = esc(&s.version),
        uptime = duration(s.uptime_seconds),
        auth = esc(&s.auth),
        at = timestamp(s.generated_at),
    );
    summary(&mut h, s);
    backends(&mut h, s);
    repositories(&mut h, s);
    traffic(&mut h, s);
    listeners(&mut h, s);
    certificates(&mut h, &s.certificates);
    h.push_str(
        "</main><footer>The same data as JSON: <a href=\"/status.json\">/status.json</a> · \
         Prometheus: <a href=\"/metrics\">/metrics</a></footer></body></html>\n",
    );
    h
}

fn down_count(s: &Status) -> usize {
    s.backends.iter().filter(|b| b.up == Some(false)).count()
}

fn summary(h: &mut String, s: &Status) {
    let down = down_count(s);
    let class = if down > 0 { "bad" } else { "ok" };
    let _ = write!(
        h,
        "<section id=\"summary\"><div class=\"cards\">\
         <div class=\"card {class}\">backends up<b>{up} / {all}</b></div>",
        up = s.backends.iter().filter(|b| b.up == Some(true)).count(),
        all = s.backends.len(),
    );
    let t = &s.totals;
    for (label, v) in [
        ("requests / min", t.requests_per_minute),
        ("5xx / min", t.errors_per_minute),
        ("denied / min", t.denied_per_minute),
    ] {
        let _ = write!(h, "<div class=\"card\">{label}<b>{}</b></div>", rate(v));
    }
    let _ = write!(
        h,
        "<div class=\"card\">schema 1 refused<b>{}</b></div></div><p>Rates over the last {}.</p></section>",
        t.schema1_refused,
        window(s.window_seconds)
    );
}

fn state(up: Option<bool>) -> &'static str {
    match up {
        Some(true) => "up",
        Some(false) => "down",
        None => "unknown",
    }
}

fn badge(up: Option<bool>) -> String {
    let st = state(up);
    format!("<span class=\"badge {st}\" data-state=\"{st}\">{st}</span>")
}

fn backends(h: &mut String, s: &Status) {
    h.push_str(
        "<section id=\"backends\"><h2>Backends</h2><table>\
         <tr><th>backend</th><th>state</th><th>url</th><th>kind</th><th>repositories</th></tr>",
    );
    for b in &s.backends {
        let repos: Vec<&str> = s
            .repositories
            .iter()
            .filter(|r| r.backend == b.name)
            .map(|r| r.key.as_str())
            .collect();
        let _ = write!(
            h,
            "<tr id=\"backend-{id}\" class=\"{st}\"><td>{name}</td><td>{badge}</td>\
             <td><code>{url}</code></td><td>{kind}</td><td>{repos}</td></tr>",
            id = esc(&b.name),
            st = state(b.up),
            name = esc(&b.name),
            badge = badge(b.up),
            url = esc(&b.url),
            kind = esc(&b.kind),
            repos = esc(&repos.join(", ")),
        );
    }
    h.push_str("</table></section>");
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "blocked"
    } else {
        "allowed"
    }
}

fn repositories(h: &mut String, s: &Status) {
    h.push_str(
        "<section id=\"repositories\"><h2>Repositories</h2><table>\
         <tr><th>repository</th><th>type</th><th>backend</th><th>schema 1 push</th>\
         <th>schema 1 pull</th><th>access</th><th>req/min</th><th>5xx/min</th>\
         <th>denied/min</th><th>schema 1 refused</th></tr>",
    );
    for r in &s.repositories {
        let access = if s.auth == "passthrough" {
            "backend decides".to_string()
        } else {
            format!(
                "{}read {} · write {} · admin {}",
                if r.anonymous_read {
                    "anonymous read · "
                } else {
                    ""
                },
                r.readers,
                r.writers,
                r.admins
            )
        };
        let prefix = if r.name_prefix.is_empty() {
            String::new()
        } else {
            format!(" <code>{}</code>", esc(&r.name_prefix))
        };
        let Rates {
            requests_per_minute,
            errors_per_minute,
            denied_per_minute,
            schema1_refused,
        } = r.rates;
        let _ = write!(
            h,
            "<tr id=\"repo-{key}\" class=\"{st}\"><td>{key}</td><td>{kind}</td>\
             <td>{backend}{prefix} {badge}</td><td>{push}</td><td>{pull}</td><td>{access}</td>\
             <td class=\"n\">{req}</td><td class=\"n\">{err}</td><td class=\"n\">{den}</td>\
             <td class=\"n\">{schema1_refused}</td></tr>",
            key = esc(&r.key),
            st = state(r.backend_up),
            kind = esc(&r.kind),
            backend = esc(&r.backend),
            badge = badge(r.backend_up),
            push = yes_no(r.block_schema1_push),
            pull = yes_no(r.block_schema1_pull),
            access = esc(&access),
            req = rate(requests_per_minute),
            err = rate(errors_per_minute),
            den = rate(denied_per_minute),
        );
    }
    h.push_str("</table></section>");
}

/// Requests (blue) and 5xx (red) per minute, one point per sample interval.
fn traffic(h: &mut String, s: &Status) {
    h.push_str("<section id=\"traffic\"><h2>Traffic</h2>");
    if s.recent.len() < 2 {
        h.push_str("<p>Collecting samples…</p></section>");
        return;
    }
    let (w, ht) = (600.0, 80.0);
    let max = s
        .recent
        .iter()
        .map(|p| p.requests_per_minute.max(p.errors_per_minute))
        .fold(1.0_f64, f64::max);
    let line = |f: fn(&Point) -> f64| {
        let n = (s.recent.len() - 1) as f64;
        s.recent
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * w / n,
                    ht - f(p) / max * (ht - 4.0)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        h,
        "<svg width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" \
         aria-label=\"requests and 5xx per minute\" style=\"background:#fafbfc\">\
         <polyline fill=\"none\" stroke=\"#2f6fdb\" stroke-width=\"2\" points=\"{req}\"/>\
         <polyline fill=\"none\" stroke=\"#d2321f\" stroke-width=\"2\" points=\"{err}\"/></svg>\
         <p>Requests per minute (blue, peak {peak}) and 5xx per minute (red) over the last {win}.</p>\
         </section>",
        req = line(|p| p.requests_per_minute),
        err = line(|p| p.errors_per_minute),
        peak = rate(max),
        win = window(s.window_seconds),
    );
}

fn listeners(h: &mut String, s: &Status) {
    h.push_str(
        "<section id=\"listeners\"><h2>Listeners</h2><table>\
         <tr><th>address</th><th>method</th><th></th></tr>",
    );
    for l in &s.listeners {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&l.address),
            esc(&l.method),
            esc(l.detail.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table></section>");
}

fn certificates(h: &mut String, certs: &[CertificateView]) {
    h.push_str(
        "<section id=\"certificates\"><h2>Certificates</h2><table>\
         <tr><th>certificate</th><th>chosen for</th><th>subject</th><th>SANs</th>\
         <th>not after</th><th>days left</th></tr>",
    );
    for c in certs {
        let class = match c.days_left {
            d if d < 0 => "bad",
            d if d < 14 => "warn",
            _ => "ok",
        };
        let sans: Vec<String> = c
            .dns_sans
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(c.ip_sans.iter().map(|i| format!("IP:{i}")))
            .collect();
        let chosen = if c.server_names.is_empty() {
            "default (no or unknown SNI)".to_string()
        } else {
            c.server_names.join(", ")
        };
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{chosen}</td><td><code>{subject}</code></td>\
             <td><code>{sans}</code></td><td>{after}</td>\
             <td><span class=\"badge {class}\">{days}</span></td></tr>",
            name = esc(&c.name),
            chosen = esc(&chosen),
            subject = esc(&c.subject),
            sans = esc(&sans.join(", ")),
            after = timestamp(c.not_after),
            days = c.days_left,
        );
    }
    h.push_str("</table></section>");
}

/// HTML-escapes text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn rate(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn window(secs: i64) -> String {
    if secs <= 0 {
        "— (collecting)".into()
    } else {
        duration(secs.unsigned_abs())
    }
}

fn timestamp(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::{BackendView, ListenerView, RepositoryView};
    use super::*;

    fn status() -> Status {
        let repo = |key: &str, backend: &str, up| RepositoryView {
            key: key.into(),
            kind: "local".into(),
            backend: backend.into(),
            backend_up: up,
            name_prefix: String::new(),
            block_schema1_push: true,
            block_schema1_pull: false,
            anonymous_read: false,
            readers: 2,
            writers: 1,
            admins: 0,
            rates: Rates {
                requests_per_minute: 12.0,
                errors_per_minute: 0.5,
                denied_per_minute: 0.0,
                schema1_refused: 3,
            },
        };
        Status {
            version: "0.1.0".into(),
            generated_at: 1_700_000_000,
            uptime_seconds: 3725,
            auth: "bearer".into(),
            listeners: vec![ListenerView {
                address: "0.0.0.0:443".into(),
                method: "subdomain".into(),
                detail: Some("*.registry.example".into()),
            }],
            backends: vec![
                BackendView {
                    name: "main".into(),
                    url: "http://127.0.0.1:5000/v2".into(),
                    kind: "distribution".into(),
                    up: Some(true),
                },
                BackendView {
                    name: "<spare>".into(),
                    url: "http://10.0.0.2:5000/v2".into(),
                    kind: "distribution".into(),
                    up: Some(false),
                },
            ],
            repositories: vec![
                repo("docker-local", "main", Some(true)),
                repo("legacy", "<spare>", Some(false)),
            ],
            window_seconds: 300,
            totals: Rates::default(),
            recent: vec![
                Point {
                    at: 1,
                    requests_per_minute: 10.0,
                    errors_per_minute: 0.0,
                },
                Point {
                    at: 2,
                    requests_per_minute: 20.0,
                    errors_per_minute: 5.0,
                },
            ],
            certificates: vec![CertificateView {
                name: "default".into(),
                server_names: vec![],
                subject: "CN=dockgate".into(),
                dns_sans: vec!["localhost".into()],
                ip_sans: vec!["127.0.0.1".into()],
                not_after: 1_700_864_000,
                days_left: 10,
            }],
        }
    }

    #[test]
    fn page_shows_state_settings_and_escapes() {
        let page = render(&status());
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(page.contains("<title>DOWN · dockgate status</title>"));
        assert!(page.contains("backends up<b>1 / 2</b>"));
        assert!(page.contains(
            "<tr id=\"backend-&lt;spare&gt;\" class=\"down\"><td>&lt;spare&gt;</td>\
             <td><span class=\"badge down\" data-state=\"down\">down</span>"
        ));
        assert!(page.contains("<tr id=\"backend-main\" class=\"up\">"));
        assert!(page.contains("<tr id=\"repo-legacy\" class=\"down\">"));
        assert!(
            page.contains("<td>blocked</td><td>allowed</td><td>read 2 · write 1 · admin 0</td>")
        );
        assert!(page.contains("<td class=\"n\">12</td><td class=\"n\">0.5</td>"));
        assert!(page.contains("DNS:localhost, IP:127.0.0.1"));
        assert!(page.contains("<span class=\"badge warn\">10</span>"));
        assert!(page.contains("*.registry.example"));
        assert!(page.contains("up 1h 2m") && page.contains("updated 2023-11-14T22:13:20Z"));
        assert!(page.contains("<polyline") && page.contains("peak 20"));
        // Self-contained: no scripts, no external assets.
        for bad in [
            "<script",
            "src=",
            "<link",
            "http-equiv=\"refresh\" content=\"0",
        ] {
            assert!(!page.contains(bad), "{bad}");
        }
        assert!(!page.contains("<spare>"), "unescaped");
    }

    #[test]
    fn quiet_and_healthy() {
        let mut s = status();
        s.backends.truncate(1);
        s.recent.clear();
        s.window_seconds = 0;
        s.auth = "passthrough".into();
        let page = render(&s);
        assert!(page.contains("<title>dockgate status</title>"));
        assert!(page.contains("Collecting samples"));
        assert!(page.contains("— (collecting)"));
        assert!(page.contains("backend decides"));
    }

    #[test]
    fn helpers() {
        assert_eq!(esc("a&b<\"'>"), "a&amp;b&lt;&quot;&#39;&gt;");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(0.25), "0.2");
        assert_eq!(rate(123.4), "123");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(90_000), "1d 1h");
        assert_eq!(state(None), "unknown");
    }
}
