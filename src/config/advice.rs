//! Things a valid config may still get wrong: `dockgate check` prints them
//! as warnings and `serve` logs them, but neither refuses to run.

use super::Config;

/// Warnings about `cfg`, each naming the key it is about.
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.auth.is_none() {
        for (i, l) in cfg.listeners.iter().enumerate() {
            if !l.address.ip().is_loopback() {
                out.push(format!(
                    "{}: listen[{i}].address: {} is reachable from other machines and there \
                     is no [auth] section, so anyone who can connect may push and delete \
                     (unless every backend asks for credentials itself); add [auth] first",
                    cfg.path.display(),
                    l.address
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    fn config(listen: &str, auth: bool) -> String {
        let auth = if auth {
            "[auth]\nhtpasswd = \"htpasswd\"\n"
        } else {
            ""
        };
        format!(
            "[tls]\ncert = \"s.crt\"\nkey = \"s.key\"\n{auth}\
             [[listen]]\naddress = \"{listen}\"\nmethod = \"path\"\n\
             [backends.b]\nurl = \"http://127.0.0.1:5000\"\n\
             [repositories.r]\nbackend = \"b\"\n"
        )
    }

    #[test]
    fn warns_only_for_open_listeners_without_auth() {
        let cases = [
            ("127.0.0.1:5443", false, false),
            ("[::1]:5443", false, false),
            ("0.0.0.0:5443", false, true),
            ("[::]:5443", false, true),
            ("10.0.0.5:5443", false, true),
            ("0.0.0.0:5443", true, false),
        ];
        for (listen, auth, warned) in cases {
            let cfg = crate::config::parse(&config(listen, auth), Path::new("/x/d.toml")).unwrap();
            let w = super::warnings(&cfg);
            assert_eq!(!w.is_empty(), warned, "{listen} auth={auth}: {w:?}");
            if warned {
                assert!(w[0].contains("listen[0].address"), "{w:?}");
                assert!(w[0].contains("[auth]"), "{w:?}");
            }
        }
    }
}
