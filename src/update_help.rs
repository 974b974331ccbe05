//! The product spec's "Update Help" for one domain, as data: the cURL commands, the alternative
//! endpoints, whether the owner can use an API key, the router settings and the compatible
//! routers. `certadns-ddns update-help FQDN` renders it as text; the account holder's pages are to
//! render the same value as HTML, so the two can never disagree.
//!
//! Pure: the caller reads the domain and its owner from the store and says where the update
//! endpoints are reached (`public-url`).

use crate::model::{Plan, RecordType};

/// Routers known to speak dyndns2 with a custom server (product spec §6).
pub const COMPATIBLE_ROUTERS: &[&str] = &[
    "Ubiquiti EdgeRouter / UniFi",
    "pfSense / OPNsense",
    "DD-WRT / OpenWRT",
    "ASUS RT-series",
    "Netgear routers with DDNS support",
    "TP-Link routers with DDNS support",
];

/// The update paths that take the same parameters as `/nic/update`, and what differs on each.
pub const ALTERNATIVE_ENDPOINTS: &[(&str, Option<&str>)] = &[
    ("/domains/nic/update", None),
    ("/domains/v2/update", None),
    ("/domains/dyndns/update", None),
    (
        "/domains/update",
        Some("Basic auth or username/password parameters; no Bearer"),
    ),
];

/// What the help is about: a domain and its owner, as the store has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The name.
    pub fqdn: String,
    /// Its record types (A, AAAA or both).
    pub types: Vec<RecordType>,
    /// Owner's username.
    pub owner: String,
    /// Owner's plan.
    pub plan: Plan,
    /// Prefixes of the owner's active keys that may update.
    pub key_prefixes: Vec<String>,
}

/// Whether the owner can update with an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    /// The free plan has no API keys: the account password it is.
    FreePlan,
    /// A paid plan, but no active key with the update scope yet.
    NoKey,
    /// The prefixes of the keys that can update (a key is shown only when created).
    Keys(Vec<String>),
}

/// One command to copy, with what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// What it does, as a sentence.
    pub label: String,
    /// The exact text to copy.
    pub text: String,
}

/// The Update Help of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateHelp {
    /// The domain.
    pub fqdn: String,
    /// Its heading: name, types, owner and plan.
    pub title: String,
    /// The cURL / Script tab: commands, in order.
    pub commands: Vec<Command>,
    /// The alternative endpoints (full URLs), with what differs on each.
    pub endpoints: Vec<(String, Option<&'static str>)>,
    /// Whether the owner can use an API key.
    pub keys: KeyStatus,
    /// The Router tab: setting and value, in order.
    pub router_settings: Vec<(&'static str, String)>,
    /// What the router placeholders mean.
    pub router_note: &'static str,
    /// The full router setup guide (a page of the account holder's pages).
    pub guide_url: String,
}

impl UpdateHelp {
    /// The help for `subject`, with the update endpoints under `base` (`https://ddns.example.net`,
    /// no trailing slash).
    pub fn new(subject: &Subject, base: &str) -> Self {
        let fqdn = &subject.fqdn;
        let owner = &subject.owner;
        // The key commands only for an owner who holds a key that can update: the others are
        // told how to get one (or that their plan has none), and shown the password commands.
        let uses_keys = subject.plan.allows_api_keys() && !subject.key_prefixes.is_empty();
        let secret = if uses_keys {
            "ak_YOUR_API_KEY"
        } else {
            "YOUR_PASSWORD"
        };
        let example_ip = match subject.types.as_slice() {
            [RecordType::Aaaa] => "2001:db8::7",
            types if types.len() > 1 => "203.0.113.7,2001:db8::7",
            _ => "203.0.113.7",
        };
        let types: Vec<&str> = subject.types.iter().map(|t| t.as_str()).collect();
        let credential = if uses_keys {
            "an API key"
        } else {
            "your account password"
        };
        let mut commands = vec![Command {
            label: format!("With {credential}, Basic auth, and an explicit address:"),
            text: format!(
                "curl -u \"{owner}:{secret}\" \"{base}/nic/update?hostname={fqdn}&myip={example_ip}\""
            ),
        }];
        if uses_keys {
            commands.push(Command {
                label: "With an API key as Bearer token:".into(),
                text: format!(
                    "curl -H \"Authorization: Bearer {secret}\" \"{base}/nic/update?hostname={fqdn}&myip={example_ip}\""
                ),
            });
        }
        commands.push(Command {
            label: "Detecting the address (leave out myip; the address you connect from is used):"
                .into(),
            text: format!("curl -u \"{owner}:{secret}\" \"{base}/nic/update?hostname={fqdn}\""),
        });
        if subject.types.contains(&RecordType::Aaaa) {
            // A home network's IPv6: the router sends the LAN prefix, and the hosts with an
            // interface id that follow this name move with it (`domain set --follows`).
            commands.push(Command {
                label: "FRITZ!Box Update-URL (user name and password in its own fields; it sends                         nothing while the user name field is empty). It also sends the LAN                         prefix, which moves the hosts that follow this name:"
                    .into(),
                text: format!(
                    "{base}/nic/update?hostname=<domain>&myip=<ipaddr>&myipv6=<ip6addr>&ip6lanprefix=<ip6lanprefix>"
                ),
            });
            commands.push(Command {
                label: "A new IPv6 prefix from a script (OpenWRT, OPNsense: see                         examples/ipv6-prefix.md); the hosts with an interface id take it:"
                    .into(),
                text: format!(
                    "curl -u \"{owner}:{secret}\" \"{base}/nic/update?hostname={fqdn}&ipv6prefix=2001:db8:1234:5600::/56\""
                ),
            });
        }
        let keys = if !subject.plan.allows_api_keys() {
            KeyStatus::FreePlan
        } else if subject.key_prefixes.is_empty() {
            KeyStatus::NoKey
        } else {
            KeyStatus::Keys(subject.key_prefixes.clone())
        };
        let password = if subject.plan.allows_api_keys() {
            "your API key (recommended) or account password"
        } else {
            "your account password"
        };
        let server = base.split("://").nth(1).unwrap_or(base);
        Self {
            fqdn: fqdn.clone(),
            title: format!(
                "Update help for {fqdn} ({}; owner {owner}, {} plan)",
                types.join(" and "),
                subject.plan
            ),
            commands,
            endpoints: ALTERNATIVE_ENDPOINTS
                .iter()
                .map(|(path, note)| (format!("{base}{path}"), *note))
                .collect(),
            keys,
            router_settings: vec![
                ("Service / Provider", "dyndns2 / Custom".to_string()),
                ("Server / Hostname", server.to_string()),
                ("Domain / Hostname", fqdn.clone()),
                ("Username", format!("{owner} (or the account email)")),
                ("Password", password.to_string()),
                (
                    "Update URL / Path",
                    "/nic/update?hostname=%h&myip=%i".to_string(),
                ),
            ],
            guide_url: format!("{base}/dashboard/guide"),
            router_note: "%h is replaced by the hostname and %i by the detected address. If your \
                          router has no %i, leave out &myip=%i and the server detects the address.",
        }
    }
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;

    /// alice's `home.dyn.example` of `types`, on `plan`, with keys of `key_prefixes`.
    pub(crate) fn subject(plan: Plan, key_prefixes: &[&str], types: &[RecordType]) -> Subject {
        Subject {
            fqdn: "home.dyn.example".into(),
            types: types.to_vec(),
            owner: "alice".into(),
            plan,
            key_prefixes: key_prefixes.iter().map(|p| (*p).to_string()).collect(),
        }
    }

    #[test]
    fn paid_plans_get_the_bearer_command_and_their_keys() {
        let help = UpdateHelp::new(
            &subject(Plan::Plus, &["ak_abcdefgh"], &[RecordType::A]),
            "https://ddns.example.net",
        );
        let texts: Vec<&str> = help.commands.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "curl -u \"alice:ak_YOUR_API_KEY\" \"https://ddns.example.net/nic/update?hostname=home.dyn.example&myip=203.0.113.7\"",
                "curl -H \"Authorization: Bearer ak_YOUR_API_KEY\" \"https://ddns.example.net/nic/update?hostname=home.dyn.example&myip=203.0.113.7\"",
                "curl -u \"alice:ak_YOUR_API_KEY\" \"https://ddns.example.net/nic/update?hostname=home.dyn.example\"",
            ]
        );
        assert_eq!(help.keys, KeyStatus::Keys(vec!["ak_abcdefgh".into()]));
        assert_eq!(help.endpoints.len(), 4);
        assert_eq!(
            help.endpoints[0].0,
            "https://ddns.example.net/domains/nic/update"
        );
        assert_eq!(
            help.router_settings[1],
            ("Server / Hostname", "ddns.example.net".to_string())
        );
    }

    #[test]
    fn free_plans_use_the_password_and_no_bearer() {
        let help = UpdateHelp::new(
            &subject(Plan::Free, &[], &[RecordType::A]),
            "http://127.0.0.1:8080",
        );
        assert_eq!(help.keys, KeyStatus::FreePlan);
        assert!(help.commands.iter().all(|c| !c.text.contains("Bearer")));
        assert!(help.commands[0].text.contains("alice:YOUR_PASSWORD"));
        let keyless = UpdateHelp::new(
            &subject(Plan::Pro, &[], &[RecordType::A, RecordType::Aaaa]),
            "http://x",
        );
        assert_eq!(keyless.keys, KeyStatus::NoKey);
        assert!(
            keyless.commands[0]
                .text
                .contains("alice:YOUR_PASSWORD\" \"http://x/nic/update?hostname=home.dyn.example&myip=203.0.113.7,2001:db8::7")
        );
        assert!(
            keyless.commands.iter().all(|c| !c.text.contains("Bearer")),
            "no Bearer command before the owner has a key"
        );
    }

    #[test]
    fn ipv6_hosts_are_shown_the_router_prefix_update() {
        let help = UpdateHelp::new(
            &subject(Plan::Plus, &["ak_abcdefgh"], &[RecordType::Aaaa]),
            "https://ddns.example.net",
        );
        let texts: Vec<&str> = help.commands.iter().map(|c| c.text.as_str()).collect();
        assert!(texts.contains(
            &"https://ddns.example.net/nic/update?hostname=<domain>&myip=<ipaddr>&myipv6=<ip6addr>&ip6lanprefix=<ip6lanprefix>"
        ));
        assert!(texts.contains(
            &"curl -u \"alice:ak_YOUR_API_KEY\" \"https://ddns.example.net/nic/update?hostname=home.dyn.example&ipv6prefix=2001:db8:1234:5600::/56\""
        ));
        let v4 = UpdateHelp::new(&subject(Plan::Plus, &[], &[RecordType::A]), "http://x");
        assert!(v4.commands.iter().all(|c| !c.text.contains("prefix")));
    }
}
