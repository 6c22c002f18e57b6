//! The sign-in pages: small server-rendered HTML, no external assets.

use crate::observe::status::html::esc;
use base64::Engine;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d2430}\
h1{font-size:1.4rem}pre{background:#f3f5f8;border:1px solid #d8dde5;padding:.7rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
a.btn,button{display:inline-block;padding:.45rem .9rem;border:1px solid #3b6fd8;border-radius:4px;background:#3b6fd8;color:#fff;text-decoration:none;font:inherit;cursor:pointer}\
button.danger{background:#c23b3b;border-color:#c23b3b}ul.p{list-style:none;padding:0}ul.p li{margin:.5rem 0}\
.err{border-left:4px solid #c23b3b;padding:.5rem 1rem;background:#fbeeee}dt{font-weight:600}dd{margin:0 0 .5rem 0}form{display:inline}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{t} · dockgate</title><style>{STYLE}</style></head><body>{body}</body></html>",
        t = esc(title)
    )
}

/// `GET /login`: one button per provider.
pub fn providers(list: &[(String, String)]) -> String {
    let mut b = String::from("<h1>Sign in to dockgate</h1><ul class=\"p\">");
    for (name, display) in list {
        b.push_str(&format!(
            "<li><a class=\"btn\" href=\"/login/{n}\">Sign in with {d}</a></li>",
            n = esc(name),
            d = esc(display)
        ));
    }
    b.push_str("</ul>");
    page("Sign in", &b)
}

pub fn error(message: &str) -> String {
    page(
        "Sign-in failed",
        &format!(
            "<h1>Sign-in failed</h1><p class=\"err\">{}</p><p><a href=\"/login\">Start again</a></p>",
            esc(message)
        ),
    )
}

pub struct UserView<'a> {
    pub user: &'a str,
    pub provider: &'a str,
    pub email: &'a str,
    pub groups: Vec<String>,
    pub host: &'a str,
    pub key: &'a str,
    pub csrf: &'a str,
}

/// The signed-in user: groups, the CLI secret as a `docker login`
/// command and a config.json entry, the credential helper, revocation.
pub fn user(v: &UserView) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", v.user, v.key));
    let groups = if v.groups.is_empty() {
        "(none)".to_string()
    } else {
        v.groups.join(", ")
    };
    let login = format!(
        "echo '{}' | docker login {} --username {} --password-stdin",
        v.key, v.host, v.user
    );
    let cfg = format!(
        "{{\n  \"auths\": {{\n    \"{}\": {{ \"auth\": \"{auth}\" }}\n  }}\n}}",
        v.host
    );
    let helper = format!(
        "dockgate login {h}\n# ~/.docker/config.json\n{{ \"credHelpers\": {{ \"{h}\": \"dockgate\" }} }}",
        h = v.host
    );
    let body = format!(
        "<h1>Signed in as <span id=\"user\">{u}</span></h1>\
<dl><dt>Provider</dt><dd>{p}</dd><dt>E-mail</dt><dd>{e}</dd><dt>Groups</dt><dd id=\"groups\">{g}</dd></dl>\
<h2>docker login</h2><p>Your CLI secret works as the password for docker, podman and skopeo:</p>\
<pre id=\"docker-login\">{login}</pre>\
<h2>config.json</h2><pre id=\"config-json\">{cfg}</pre>\
<h2>No copying: the credential helper</h2><pre id=\"helper\">{helper}</pre>\
<h2>Keys</h2><p>Revoking makes a new CLI secret and ends every refresh token issued to you.</p>\
<form method=\"post\" action=\"/user/revoke\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
<button class=\"danger\" id=\"revoke\" type=\"submit\">Revoke my keys</button></form> \
<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
<button type=\"submit\">Sign out</button></form>",
        u = esc(v.user),
        p = esc(v.provider),
        e = esc(v.email),
        g = esc(&groups),
        login = esc(&login),
        cfg = esc(&cfg),
        helper = esc(&helper),
        c = esc(v.csrf),
    );
    page(v.user, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_and_link_nothing_external() {
        let v = UserView {
            user: "ann",
            provider: "idp",
            email: "<a@b>",
            groups: vec!["devs".into()],
            host: "reg.example:8443",
            key: "dgk_x",
            csrf: "c\"s",
        };
        let h = user(&v);
        assert!(h.contains("&lt;a@b&gt;") && !h.contains("<a@b>"));
        assert!(h.contains("docker login reg.example:8443 --username ann --password-stdin"));
        assert!(h.contains("value=\"c&quot;s\""));
        for page in [h, providers(&[("gh".into(), "GitHub".into())]), error("x")] {
            assert!(!page.contains("http://") && !page.contains("https://"));
            assert!(!page.contains("<script"));
        }
    }
}
