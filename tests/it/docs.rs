//! The documentation against the program (issue 29, item 9): every `certadns-ddns` command in a
//! shell block of README.md, pdns-conf/README.md and examples/*.md must name commands and
//! flags the binary has (checked as clap checks them: the command line with `--help` after
//! it), and every TOML block must load as a configuration. What needs a network or a running
//! pdns is not run here; the end-to-end tests run those parts.

use std::path::{Path, PathBuf};

use crate::common::BIN;

/// The documents checked: the READMEs and the Markdown examples.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("pdns-conf/README.md")];
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    examples.sort();
    files.extend(examples);
    files
}

/// The fenced blocks of `text` in `language`, with the line each starts at.
fn blocks<'a>(text: &'a str, language: &str) -> Vec<(usize, &'a str)> {
    let fence = format!("```{language}\n");
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&fence) {
        let body_start = start + fence.len();
        let Some(length) = rest[body_start..].find("```") else {
            break;
        };
        let offset = text.len() - rest.len() + body_start;
        found.push((
            text[..offset].matches('\n').count() + 1,
            &rest[body_start..body_start + length],
        ));
        rest = &rest[body_start + length + 3..];
    }
    found
}

/// The `certadns-ddns` command lines of a shell block: continuation lines joined, comments
/// dropped, each simple command (between `|`, `&&`, `;`, `$(`...) taken when the binary is its
/// command (after any `VAR=value` and `sudo`), up to a redirection; the README's `ddns`
/// function is the binary too.
fn invocations(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        let line = line.split(" #").next().unwrap_or_default();
        if line.trim_start().starts_with('#') || line.contains("() {") {
            continue;
        }
        let mut separated = line.to_string();
        for operator in ["&&", "||", "$(", "|", ";", "(", ")", "&", "`"] {
            separated = separated.replace(operator, "\n");
        }
        for command in separated.lines() {
            let command = command.split(['>', '<']).next().unwrap_or_default();
            let Some(words) = shlex::split(command) else {
                continue;
            };
            let mut words = words
                .into_iter()
                .skip_while(|word| word.contains('=') || word == "sudo")
                .peekable();
            if words
                .next_if(|word| {
                    ["certadns-ddns", "/usr/bin/certadns-ddns", "ddns"].contains(&word.as_str())
                })
                .is_some()
            {
                found.push(words.collect());
            }
        }
    }
    found
}

#[test]
fn every_documented_command_names_what_the_binary_has() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, block) in blocks(&text, "sh") {
            for words in invocations(block) {
                let output = std::process::Command::new(BIN)
                    .args(&words)
                    .arg("--help")
                    .env_remove("CERTADNS_DB")
                    .env_remove("CERTADNS_CONFIG")
                    .output()
                    .unwrap();
                checked += 1;
                if !output.status.success() {
                    failures.push(format!(
                        "{}:{line}: certadns-ddns {}\n  {}",
                        file.display(),
                        words.join(" "),
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 20,
        "only {checked} commands found: is the extraction broken?"
    );
}

#[test]
fn every_documented_config_snippet_loads() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, block) in blocks(&text, "toml") {
            checked += 1;
            if let Err(error) = certadns_ddns::config::Config::from_toml(block) {
                failures.push(format!("{}:{line}: {error}\n{block}", file.display()));
            }
        }
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml");
    if let Err(error) = certadns_ddns::config::Config::load(&example) {
        failures.push(format!("examples/config.toml: {error}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 2, "only {checked} snippets found");
}

/// The shell lines that write config for us (`printf '[[pdns.api]]…' > certadns.toml`), as
/// pdns-conf/README.md's install step edits the packaged file: the result must load.
#[test]
fn the_install_steps_config_edits_give_a_config_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml"),
        &config,
    )
    .unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pdns-conf/README.md"))
            .unwrap();
    let (_, install) = blocks(&readme, "sh")[0];
    let script: String = install
        .replace("\\\n", " ")
        .lines()
        .filter(|line| {
            line.starts_with("sed -i") || line.starts_with("printf") || line.starts_with("KEY=")
        })
        .map(|line| line.replace("/etc/certadns-ddns/config.toml", config.to_str().unwrap()))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        script.contains("sed -i") && script.contains("printf"),
        "{script}"
    );
    let status = std::process::Command::new("sh")
        .args(["-ec", &script])
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
    let loaded = certadns_ddns::config::Config::load(&config).unwrap();
    assert_eq!(
        loaded.listeners.backend_socket.as_deref(),
        Some(Path::new("/run/certadns-ddns/backend.sock"))
    );
    assert_eq!(loaded.pdns.api.len(), 1);
}
