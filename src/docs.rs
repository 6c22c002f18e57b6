//! Shell completions and man pages, generated from the clap definition so
//! they never drift from `--help`. The package build writes both.

use clap_complete::Shell;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The completion script for `shell` on `out`.
pub fn completions(mut cmd: clap::Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// `dockgate.1` plus one page per subcommand (`dockgate-cert-generate.1`, …)
/// in `dir`; returns the files written.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, DocsError> {
    let err = |source| DocsError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, "", dir, &mut written)?;
    Ok(written)
}

fn write_pages(
    cmd: &clap::Command,
    prefix: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), DocsError> {
    // Subcommand pages are named after the whole command line
    // (`man dockgate-cert-generate`), as git and cargo do.
    let name = if prefix.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{prefix}-{}", cmd.get_name())
    };
    let page = cmd
        .clone()
        .display_name(name.clone())
        .bin_name(name.replace('-', " "));
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    let man = clap_mangen::Man::new(page)
        .title(name.to_uppercase())
        .source(format!("dockgate {}", env!("CARGO_PKG_VERSION")))
        .manual("dockgate manual");
    man.render(&mut buf)
        .and_then(|()| std::fs::write(&path, &buf))
        .map_err(|source| DocsError::Write {
            path: path.clone(),
            source,
        })?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &name, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("dockgate")
            .about("TLS gateway")
            .subcommand(clap::Command::new("serve").about("Run the gateway."))
            .subcommand(
                clap::Command::new("cert")
                    .about("Certificates.")
                    .subcommand(clap::Command::new("generate").about("Make a CA.")),
            )
    }

    #[test]
    fn every_shell_names_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(cli(), shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("serve") && text.contains("generate"),
                "{shell}"
            );
        }
    }

    #[test]
    fn one_page_per_command() {
        let dir = std::env::temp_dir().join(format!("dockgate-man-{}", std::process::id()));
        let pages = man_pages(cli(), &dir).unwrap();
        let names: Vec<_> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "dockgate.1",
                "dockgate-serve.1",
                "dockgate-cert.1",
                "dockgate-cert-generate.1"
            ]
        );
        let page = std::fs::read_to_string(dir.join("dockgate-cert-generate.1")).unwrap();
        assert!(page.contains(".TH DOCKGATE-CERT-GENERATE 1"), "{page}");
        assert!(page.contains("Make a CA."), "{page}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
