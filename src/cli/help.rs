//! `certadns-ddns update-help FQDN`: the product spec's "Update Help" modal as a command: ready-to-paste
//! cURL commands, the router settings, and the list of compatible routers, for one domain.

use anyhow::Context as _;

use super::print_line;
use crate::config::Config;
use crate::model::{DomainName, SCOPE_DOMAINS_UPDATE};
use crate::store::{Store, StoreError, domains, keys, users};
use crate::update_help::{COMPATIBLE_ROUTERS, KeyStatus, Subject, UpdateHelp};

/// Arguments of `update-help`.
#[derive(Debug, clap::Args)]
pub(super) struct HelpArgs {
    /// The domain to explain (`public-url` comes from --config, else http://<listen>).
    fqdn: String,
}

/// Runs `update-help`.
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
    print_line(render(&UpdateHelp::new(&subject, &base), &subject.owner).trim_end())
}

/// The help as text, for `owner`.
fn render(help: &UpdateHelp, owner: &str) -> String {
    let mut text = String::new();
    let mut line = |content: &str| {
        text.push_str(content);
        text.push('\n');
    };
    line(&help.title);
    line("");
    line("cURL / script");
    for command in &help.commands {
        line(&format!("  {}", command.label));
        line(&format!("    {}", command.text));
    }
    line("  The same parameters work on the alternative endpoints:");
    for (url, note) in &help.endpoints {
        match note {
            Some(note) => line(&format!("    {url}  ({note})")),
            None => line(&format!("    {url}")),
        }
    }
    line("");
    match &help.keys {
        KeyStatus::FreePlan => line(&format!(
            "  {owner} is on the free plan: API keys need plus, pro or elite, so use the account password."
        )),
        KeyStatus::NoKey => line(&format!(
            "  {owner} has no API key with scope {SCOPE_DOMAINS_UPDATE} yet; create one with: certadns-ddns key create {owner}"
        )),
        KeyStatus::Keys(prefixes) => line(&format!(
            "  {owner}'s API keys that can update: {} (the key is shown only when created).",
            prefixes
                .iter()
                .map(|prefix| format!("{prefix}..."))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    line("");
    line("Router");
    for (setting, value) in &help.router_settings {
        line(&format!("  {setting:<20} {value}"));
    }
    line(&format!("  {}", help.router_note));
    line("");
    line("Compatible routers");
    for router in COMPATIBLE_ROUTERS {
        line(&format!("  - {router}"));
    }
    line(&format!(
        "  The full router setup guide (signed in): {}",
        help.guide_url
    ));
    line("  Working configurations for ddclient, inadyn, OpenWRT and pfSense are in examples/.");
    text
}

#[cfg(test)]
mod test {
    use super::*;

    use crate::model::{Plan, RecordType};
    use crate::update_help::test::subject;

    fn render(subject: &Subject, base: &str) -> String {
        super::render(&UpdateHelp::new(subject, base), &subject.owner)
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
        assert!(text.contains("guide (signed in): https://ddns.example.net/dashboard/guide\n"));
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
