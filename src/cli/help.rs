//! `certadns-ddns help FQDN`: the product spec's "Update Help" modal as a command: ready-to-paste
//! cURL commands, the router settings, and the list of compatible routers, for one domain.

use anyhow::Context as _;

use super::print_line;
use crate::config::Config;
use crate::model::{DomainName, Plan, RecordType, SCOPE_DOMAINS_UPDATE};
use crate::store::{Store, StoreError, domains, keys, users};

/// Arguments of `help`.
#[derive(Debug, clap::Args)]
pub(super) struct HelpArgs {
    /// The domain to explain (`public-url` comes from --config, else http://<listen>).
    fqdn: String,
}

/// Routers known to speak dyndns2 with a custom server (product spec §6).
const COMPATIBLE_ROUTERS: &[&str] = &[
    "Ubiquiti EdgeRouter / UniFi",
    "pfSense / OPNsense",
    "DD-WRT / OpenWRT",
    "ASUS RT-series",
    "Netgear routers with DDNS support",
    "TP-Link routers with DDNS support",
];

/// What `help` needs to know about the domain.
struct Subject {
    /// The name.
    fqdn: String,
    /// Its record types (A, AAAA or both).
    types: Vec<RecordType>,
    /// Owner's username.
    owner: String,
    /// Owner's plan.
    plan: Plan,
    /// Prefixes of the owner's active keys that may update.
    key_prefixes: Vec<String>,
}

/// Runs `help`.
pub(super) fn run(store: &Store, config: &Config, args: HelpArgs) -> anyhow::Result<()> {
    let fqdn: DomainName = args
        .fqdn
        .parse()
        .with_context(|| format!("invalid name {:?}", args.fqdn))?;
    let base = config
        .updates
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listeners.listen))
        .trim_end_matches('/')
        .to_string();
    let subject = store.read(|conn| {
        let records = domains::list_domains(conn, None)?
            .into_iter()
            .filter(|domain| domain.fqdn == fqdn.as_str())
            .collect::<Vec<_>>();
        let first = records
            .first()
            .ok_or_else(|| StoreError::NotFound(format!("no domain named {fqdn}")))?;
        let owner = users::get_user_by_id(conn, first.user_id)?;
        let key_prefixes = keys::list_keys(conn, Some(owner.id))?
            .into_iter()
            .filter(|(key, _)| key.is_active && key.has_scope(SCOPE_DOMAINS_UPDATE))
            .map(|(key, _)| key.prefix)
            .collect();
        Ok(Subject {
            fqdn: fqdn.to_string(),
            types: records.iter().map(|domain| domain.record_type).collect(),
            owner: owner.username,
            plan: owner.plan,
            key_prefixes,
        })
    })?;
    print_line(render(&subject, &base).trim_end())
}

/// The help text for `subject`, with the endpoints under `base`.
fn render(subject: &Subject, base: &str) -> String {
    let fqdn = &subject.fqdn;
    let owner = &subject.owner;
    let uses_keys = subject.plan.allows_api_keys();
    let secret = if uses_keys {
        "ak_YOUR_API_KEY"
    } else {
        "YOUR_PASSWORD"
    };
    let example_ip = match subject.types.as_slice() {
        [RecordType::Aaaa] => "2001:db8::7".to_string(),
        types if types.len() > 1 => "203.0.113.7,2001:db8::7".to_string(),
        _ => "203.0.113.7".to_string(),
    };
    let types: Vec<&str> = subject.types.iter().map(|t| t.as_str()).collect();
    let server = base.split("://").nth(1).unwrap_or(base);
    let mut text = String::new();
    let mut line = |content: String| {
        text.push_str(&content);
        text.push('\n');
    };

    line(format!(
        "Update help for {fqdn} ({}; owner {owner}, {} plan)",
        types.join(" and "),
        subject.plan
    ));
    line(String::new());
    line("cURL / script".into());
    let credential = if uses_keys {
        "an API key"
    } else {
        "your account password"
    };
    line(format!(
        "  With {credential}, Basic auth, and an explicit address:"
    ));
    line(format!(
        "    curl -u \"{owner}:{secret}\" \"{base}/nic/update?hostname={fqdn}&myip={example_ip}\""
    ));
    if uses_keys {
        line("  With an API key as Bearer token:".into());
        line(format!(
            "    curl -H \"Authorization: Bearer {secret}\" \"{base}/nic/update?hostname={fqdn}&myip={example_ip}\""
        ));
    }
    line("  Detecting the address (leave out myip; the address you connect from is used):".into());
    line(format!(
        "    curl -u \"{owner}:{secret}\" \"{base}/nic/update?hostname={fqdn}\""
    ));
    line("  The same parameters work on the alternative endpoints:".into());
    for path in [
        "/domains/nic/update",
        "/domains/v2/update",
        "/domains/dyndns/update",
    ] {
        line(format!("    {base}{path}"));
    }
    line(format!(
        "    {base}/domains/update  (Basic auth or username/password parameters; no Bearer)"
    ));
    line(String::new());
    if !uses_keys {
        line(format!(
            "  {owner} is on the free plan: API keys need plus, pro or elite, so use the account password."
        ));
    } else if subject.key_prefixes.is_empty() {
        line(format!(
            "  {owner} has no API key with scope {SCOPE_DOMAINS_UPDATE} yet; create one with: certadns-ddns key create {owner}"
        ));
    } else {
        line(format!(
            "  {owner}'s API keys that can update: {} (the key is shown only when created).",
            subject
                .key_prefixes
                .iter()
                .map(|p| format!("{p}..."))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    line(String::new());
    line("Router".into());
    let password = if uses_keys {
        "your API key (recommended) or account password"
    } else {
        "your account password"
    };
    for (setting, value) in [
        ("Service / Provider", "dyndns2 / Custom".to_string()),
        ("Server / Hostname", server.to_string()),
        ("Domain / Hostname", fqdn.clone()),
        ("Username", format!("{owner} (or the account email)")),
        ("Password", password.to_string()),
        (
            "Update URL / Path",
            "/nic/update?hostname=%h&myip=%i".to_string(),
        ),
    ] {
        line(format!("  {setting:<20} {value}"));
    }
    line("  %h is replaced by the hostname and %i by the detected address. If your router has no %i,".into());
    line("  leave out &myip=%i and the server detects the address.".into());
    line(String::new());
    line("Compatible routers".into());
    for router in COMPATIBLE_ROUTERS {
        line(format!("  - {router}"));
    }
    line(
        "  Working configurations for ddclient, inadyn, OpenWRT and pfSense are in examples/."
            .into(),
    );
    text
}

#[cfg(test)]
mod test {
    use super::*;

    fn subject(plan: Plan, key_prefixes: &[&str], types: &[RecordType]) -> Subject {
        Subject {
            fqdn: "home.dyn.example".into(),
            types: types.to_vec(),
            owner: "alice".into(),
            plan,
            key_prefixes: key_prefixes.iter().map(|p| (*p).to_string()).collect(),
        }
    }

    #[test]
    fn paid_plans_get_key_commands_and_router_settings() {
        let text = render(
            &subject(Plan::Plus, &["ak_abcdefgh"], &[RecordType::A]),
            "https://ddns.example.net",
        );
        assert!(text.contains(
            "curl -u \"alice:ak_YOUR_API_KEY\" \"https://ddns.example.net/nic/update?hostname=home.dyn.example&myip=203.0.113.7\""
        ));
        assert!(text.contains("curl -H \"Authorization: Bearer ak_YOUR_API_KEY\""));
        assert!(text.contains("curl -u \"alice:ak_YOUR_API_KEY\" \"https://ddns.example.net/nic/update?hostname=home.dyn.example\"\n"));
        assert!(text.contains("https://ddns.example.net/domains/v2/update"));
        assert!(text.contains("ak_abcdefgh..."));
        assert!(text.contains("Server / Hostname    ddns.example.net"));
        assert!(text.contains("Update URL / Path    /nic/update?hostname=%h&myip=%i"));
        assert!(text.contains("pfSense / OPNsense"));
    }

    #[test]
    fn free_plans_are_told_to_use_the_password_and_keyless_users_how_to_make_a_key() {
        let free = render(
            &subject(Plan::Free, &[], &[RecordType::A]),
            "http://127.0.0.1:8080",
        );
        assert!(free.contains("use the account password"));
        assert!(
            !free.contains("Authorization: Bearer"),
            "no Bearer command for a free plan"
        );
        assert!(free.contains("alice:YOUR_PASSWORD"));
        let keyless = render(
            &subject(Plan::Pro, &[], &[RecordType::Aaaa]),
            "http://127.0.0.1:8080",
        );
        assert!(keyless.contains("create one with: certadns-ddns key create alice"));
        assert!(keyless.contains("myip=2001:db8::7"));
        let dual = render(
            &subject(Plan::Pro, &[], &[RecordType::A, RecordType::Aaaa]),
            "http://x",
        );
        assert!(dual.contains("myip=203.0.113.7,2001:db8::7"));
    }
}
