//! `dig`, and what it answered.

use super::*;

/// One resource record from dig's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigRecord {
    /// Owner name as printed (with the final dot).
    pub name: String,
    /// TTL.
    pub ttl: u32,
    /// Type.
    pub record_type: String,
    /// Data as printed.
    pub data: String,
}

/// What dig saw.
#[derive(Debug, Clone)]
pub struct DigAnswer {
    /// Response code: NOERROR, NXDOMAIN, REFUSED, SERVFAIL...
    pub status: String,
    /// Answer section.
    pub answers: Vec<DigRecord>,
    /// Authority section.
    pub authority: Vec<DigRecord>,
}

impl DigAnswer {
    /// The data of the answers of `record_type`.
    pub fn data(&self, record_type: &str) -> Vec<String> {
        self.answers
            .iter()
            .filter(|record| record.record_type == record_type)
            .map(|record| record.data.clone())
            .collect()
    }
}

/// Runs `dig @127.0.0.1 -p PORT +norec NAME TYPE` (plus `extra` options) and parses it.
pub fn dig(port: u16, name: &str, record_type: &str, extra: &[&str]) -> DigAnswer {
    let output = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+norec",
            "+time=3",
            "+tries=1",
        ])
        .args(["+noall", "+comments", "+answer", "+authority"])
        .args(extra)
        .args([name, record_type])
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("NO-ANSWER")
        .to_string();
    let mut answer = DigAnswer {
        status,
        answers: Vec::new(),
        authority: Vec::new(),
    };
    let mut section = "";
    for line in text.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(';') || line.trim().is_empty() {
            if line.starts_with(";;") && !line.contains("SECTION") {
                section = "";
            }
        } else {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 5 && fields[2] == "IN" {
                let record = DigRecord {
                    name: fields[0].to_string(),
                    ttl: fields[1].parse().unwrap_or(0),
                    record_type: fields[3].to_string(),
                    data: fields[4..].join(" "),
                };
                match section {
                    "authority" => answer.authority.push(record),
                    _ => answer.answers.push(record),
                }
            }
        }
    }
    answer
}
