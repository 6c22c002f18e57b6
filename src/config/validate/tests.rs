use super::*;

const BASE: &str = r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[backends.local]
url = "http://127.0.0.1:5000"
[repositories.docker-local]
backend = "local"
"#;

fn parse_str(s: &str) -> Result<Config, ConfigError> {
    parse(s, Path::new("/etc/dockgate/dockgate.toml"))
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse_str(BASE).unwrap();
    assert_eq!(c.tls.cert, Path::new("/etc/dockgate/c.pem"));
    let r = &c.repositories["docker-local"];
    assert_eq!(r.kind, RepoType::Local);
    assert!(r.block_schema1_push);
    assert!(!r.block_schema1_pull);
    assert_eq!(r.backend.v2_prefix, "/v2");
    assert_eq!(r.backend.read_timeout, Duration::from_secs(900));
    assert_eq!(c.server.threads, 2);
}

#[test]
fn errors_name_file_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[repositories.docker-local]",
            "[repositories.docker-local]\nupstream = \"x\"",
            "unknown field",
        ),
        (
            "backend = \"local\"",
            "backend = \"hub\"",
            "repositories.docker-local.backend: unknown backend \"hub\"",
        ),
        (
            "method = \"path\"",
            "method = \"paths\"",
            "listen[0].method",
        ),
        (
            "method = \"path\"",
            "method = \"port\"",
            "listen[0].repository: required",
        ),
        (
            "method = \"path\"",
            "method = \"port\"\nrepository = \"nope\"",
            "listen[0].repository: unknown repository",
        ),
        (
            "method = \"path\"",
            "method = \"subdomain\"",
            "listen[0].base_domain",
        ),
        (
            "url = \"http://127.0.0.1:5000\"",
            "url = \"ftp://x\"",
            "backends.local.url",
        ),
        (
            "url = \"http://127.0.0.1:5000\"",
            "url = \"http://127.0.0.1:5000\"\nv2_prefix = \"v2/\"",
            "backends.local.v2_prefix",
        ),
        (
            "address = \"127.0.0.1:5443\"",
            "address = \"nowhere\"",
            "listen[0].address",
        ),
        (
            "[tls]",
            "[server]\nthreads = 100000000\n[tls]",
            "server.threads: 100000000: must be between 1 and 1024",
        ),
        ("[tls]", "[server]\nthreads = 0\n[tls]", "server.threads"),
        (
            "[tls]",
            "[server]\ndrain_delay_seconds = 301\n[tls]",
            "server.drain_delay_seconds: 301: at most 300",
        ),
        (
            "[tls]",
            "[metrics]\naddress = \"127.0.0.1:5443\"\n[tls]",
            "metrics.address: 127.0.0.1:5443 is also a [[listen]] address",
        ),
        (
            "[tls]",
            "[metrics]\naddress = \"0.0.0.0:5443\"\n[tls]",
            "metrics.address",
        ),
        (
            "[repositories.docker-local]",
            "[repositories.Docker]",
            "repositories.Docker",
        ),
        (
            "backend = \"local\"",
            "backend = \"local\"\ntype = \"virtual\"",
            "repositories.docker-local.type",
        ),
        (
            "backend = \"local\"",
            "backend = \"local\"\nname_prefix = \"Team/\"",
            "name_prefix",
        ),
        ("key = \"k.pem\"", "", "tls.key: missing"),
        (
            "key = \"k.pem\"",
            "key = \"k.pem\"\nips = [\"1.2.3.4\"]",
            "tls.ips",
        ),
        (
            "key = \"k.pem\"",
            "key = \"k.pem\"\ngenerate = true\nips = [\"1.2.3\"]",
            "tls.ips[0]",
        ),
        // Serde refuses these itself; the path names the key, toml the line.
        (
            "method = \"path\"",
            "method = \"paths\"",
            "listen[0].method (line 7): unknown variant `paths`, expected one of `path`, `subdomain`, `port`",
        ),
        (
            "backend = \"local\"",
            "backend = \"local\"\ntype = \"virtual\"",
            "repositories.docker-local.type (line 12): unknown variant `virtual`, expected `local` or `remote`",
        ),
        (
            "url = \"http://127.0.0.1:5000\"",
            "url = \"http://127.0.0.1:5000\"\nkind = \"harbor\"",
            "backends.local.kind (line 10): unknown variant `harbor`, expected `distribution` or `artifactory`",
        ),
        (
            "key = \"k.pem\"",
            "key = \"k.pem\"\ngenerate = true\nkey_type = \"rsa-1024\"",
            "tls.key_type (line 6): unknown variant `rsa-1024`, expected one of `ecdsa-p256`, `rsa-2048`",
        ),
        (
            "[tls]",
            "[log]\nformat = \"xml\"\n[tls]",
            "log.format (line 3): unknown variant `xml`, expected `json` or `logfmt`",
        ),
        (
            "[tls]",
            "[auth]\nhtpasswd = \"h\"\nchallenge = \"digest\"\n[tls]",
            "auth.challenge (line 4): unknown variant `digest`, expected `bearer` or `basic`",
        ),
        (
            "[repositories.docker-local]",
            "[repositories.docker-local]\nupstream = \"x\"",
            "repositories.docker-local.upstream (line 11): unknown field `upstream`",
        ),
        (
            "[tls]",
            "[server]\nthreads = \"two\"\n[tls]",
            "server.threads (line 3): invalid type: string \"two\"",
        ),
        ("[tls]", "[tls", "(syntax, line 2): "),
    ];
    for (from, to, want) in cases {
        let text = BASE.replacen(from, to, 1);
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(e.starts_with("/etc/dockgate/dockgate.toml: "), "{e}");
        assert!(e.contains(want), "{to:?} gave {e:?}, wanted {want:?}");
    }
}

/// Every accepted spelling of the config enums, and their defaults.
#[test]
fn enum_values_and_defaults() {
    let c = parse_str(BASE).unwrap();
    assert_eq!(c.listeners[0].method, ListenMethod::Path);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.backends["local"].kind, BackendKind::Distribution);
    assert_eq!(c.repositories["docker-local"].kind, RepoType::Local);
    let with = |from: &str, to: &str| parse_str(&BASE.replacen(from, to, 1)).unwrap();
    for (v, want) in [("json", LogFormat::Json), ("logfmt", LogFormat::Logfmt)] {
        let c = with("[tls]", &format!("[log]\nformat = \"{v}\"\n[tls]"));
        assert_eq!(c.log.format, want);
    }
    for (v, want) in [("bearer", Challenge::Bearer), ("basic", Challenge::Basic)] {
        let c = with(
            "[tls]",
            &format!("[auth]\nhtpasswd = \"h\"\nchallenge = \"{v}\"\n[tls]"),
        );
        assert_eq!(c.auth.map(|a| a.challenge), Some(want));
    }
    let c = with("[tls]", "[auth]\nhtpasswd = \"h\"\n[tls]");
    assert_eq!(c.auth.map(|a| a.challenge), Some(Challenge::Bearer));
    for (v, want) in [
        ("distribution", BackendKind::Distribution),
        ("artifactory", BackendKind::Artifactory),
    ] {
        let url = "url = \"http://127.0.0.1:5000\"";
        let c = with(url, &format!("{url}\nkind = \"{v}\""));
        assert_eq!(c.backends["local"].kind, want);
    }
    for (v, want) in [("local", RepoType::Local), ("remote", RepoType::Remote)] {
        let b = "backend = \"local\"";
        let c = with(b, &format!("{b}\ntype = \"{v}\""));
        assert_eq!(c.repositories["docker-local"].kind, want);
    }
    use crate::tls::KeyType;
    for (v, want) in [
        ("ecdsa-p256", KeyType::EcdsaP256),
        ("rsa-2048", KeyType::Rsa2048),
        ("rsa-3072", KeyType::Rsa3072),
        ("rsa-4096", KeyType::Rsa4096),
    ] {
        let k = "key = \"k.pem\"";
        let c = with(k, &format!("{k}\ngenerate = true\nkey_type = \"{v}\""));
        assert_eq!(c.tls.generate.map(|g| g.key_type), Some(want));
        assert_eq!(
            v.parse::<KeyType>().ok(),
            Some(want),
            "same spelling as --key-type"
        );
    }
    let c = with("key = \"k.pem\"", "key = \"k.pem\"\ngenerate = true");
    assert_eq!(c.tls.generate.map(|g| g.key_type), Some(KeyType::EcdsaP256));
    let c = with(
        "method = \"path\"",
        "method = \"subdomain\"\nbase_domain = \"example.com\"",
    );
    assert_eq!(
        c.listeners[0].method,
        ListenMethod::Subdomain {
            base_domain: "example.com".into()
        }
    );
    let c = with(
        "method = \"path\"",
        "method = \"port\"\nrepository = \"docker-local\"",
    );
    assert_eq!(
        c.listeners[0].method,
        ListenMethod::Port {
            repository: "docker-local".into()
        }
    );
}

#[test]
fn repository_options() {
    let text = BASE.replacen(
        "[repositories.docker-local]",
        "[repositories.docker-local]\nallow_overlap = true",
        1,
    ) + r#"
[repositories.remote-hub]
backend = "local"
type = "remote"
name_prefix = "team-a"
block_schema1_push = false
"#;
    let c = parse_str(&text).unwrap();
    let r = &c.repositories["remote-hub"];
    assert_eq!(r.name_prefix, "team-a/");
    assert!(r.block_schema1_pull);
    assert!(!r.block_schema1_push);
    assert_eq!(r.backend_name("app"), "team-a/app");
    assert_eq!(r.image_of("team-a/app/x"), Some("app/x"));
    assert_eq!(r.image_of("team-b/app"), None);
}

#[test]
fn artifactory_prefix_implies_kind() {
    let text = BASE.replace(
        "url = \"http://127.0.0.1:5000\"",
        "url = \"http://127.0.0.1:8081\"\nv2_prefix = \"/artifactory/api/docker/{repo}/v2\"",
    );
    let c = parse_str(&text).unwrap();
    let b = &c.backends["local"];
    assert_eq!(b.kind, BackendKind::Artifactory);
    assert_eq!(
        b.v2_prefix_for("docker-local"),
        "/artifactory/api/docker/docker-local/v2"
    );
}

#[test]
fn shipped_default_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/dockgate.toml");
    let c = load(&path).unwrap();
    assert!(!c.listeners.is_empty());
    assert!(c.repositories.contains_key("docker-local"));
}

#[test]
fn client_limits_defaults_values_and_zero() {
    let c = parse_str(BASE).unwrap();
    assert_eq!(c.server.limits, crate::config::ClientLimits::default());
    assert_eq!(c.server.limits.keepalive_timeout, Duration::from_secs(75));
    let with = |line: &str| parse_str(&format!("[server]\n{line}\n{BASE}"));
    let c = with("header_timeout_seconds = 3\nmax_connections_per_client = 4").unwrap();
    assert_eq!(c.server.limits.header_timeout, Duration::from_secs(3));
    assert_eq!(c.server.limits.max_connections_per_client, 4);
    for key in [
        "header_timeout_seconds",
        "keepalive_timeout_seconds",
        "body_timeout_seconds",
        "send_timeout_seconds",
        "max_connections_per_client",
    ] {
        let e = with(&format!("{key} = 0")).unwrap_err().to_string();
        assert!(
            e.contains(&format!("server.{key}: must be at least 1")),
            "{e}"
        );
    }
}
