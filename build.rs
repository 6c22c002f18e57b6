//! Puts the git commit into `dockgate --version`. Builds outside a git
//! checkout (a source tarball, a packaging chroot without git) fall back to
//! `DOCKGATE_COMMIT` from the environment, else to "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=DOCKGATE_COMMIT");
    let commit = std::env::var("DOCKGATE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            // Rebuild when HEAD moves: HEAD itself, and the branch it names.
            // (A path that does not exist would rerun this on every build.)
            let refs = [
                Some("HEAD".to_string()),
                git(&["symbolic-ref", "-q", "HEAD"]),
                Some("packed-refs".to_string()),
            ];
            for r in refs.into_iter().flatten() {
                let path = git(&["rev-parse", "--path-format=absolute", "--git-path", &r]);
                if let Some(p) = path.filter(|p| std::path::Path::new(p).exists()) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DOCKGATE_COMMIT={commit}");
}
