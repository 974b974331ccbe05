//! Reading an UPDATE message (RFC 2136 §2, §3.1–3.4) into what the store applies: the zone,
//! the prerequisites, and the changes the key's scope allows. Pure: no store, no socket.
//!
//! Every check that can refuse the message runs before anything is written, so a message is
//! answered FORMERR, NOTZONE or REFUSED whole (RFC 2136 §3.4: all or nothing).

use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::challenges::{host_of, valid_value};
use crate::model::dnsupdate::{
    ChallengeChange, FamilyChange, HostChange, Prerequisite, StaticChange,
};
use crate::model::rdata::{ServedType, StaticType, normalize_content, quote};
use crate::model::tsig::TsigScope;
use crate::model::{DomainName, is_within, normalize_name};

/// Why a message is refused before the store sees it: the RCODE, and a reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The answer's RCODE.
    pub rcode: ResponseCode,
    /// Why, for the log (never sent).
    pub why: String,
}

impl Refusal {
    fn new(rcode: ResponseCode, why: impl Into<String>) -> Self {
        Self {
            rcode,
            why: why.into(),
        }
    }
}

/// The changes of a message, sorted by where they go.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// DDNS hosts (account keys).
    pub hosts: Vec<HostChange>,
    /// ACME values (account keys).
    pub challenges: Vec<(DomainName, ChallengeChange)>,
    /// Static records (zone keys).
    pub statics: Vec<StaticChange>,
}

/// A name of a message as the store keeps it ([`normalize_name`]).
pub(super) fn plain(name: &Name) -> String {
    normalize_name(&name.to_ascii())
}

/// The zone section (§3.1.1): one SOA question of class IN; its name, as the store keeps it.
pub fn zone_of(message: &Message) -> Result<String, Refusal> {
    let [zone] = message.queries() else {
        return Err(Refusal::new(
            ResponseCode::FormErr,
            "the zone section must hold exactly one zone",
        ));
    };
    if zone.query_type() != RecordType::SOA || zone.query_class() != DNSClass::IN {
        return Err(Refusal::new(
            ResponseCode::FormErr,
            "the zone section must be class IN, type SOA",
        ));
    }
    Ok(plain(zone.name()))
}

/// The static type of a record type, if this service keeps it.
fn static_type(record_type: RecordType) -> Option<StaticType> {
    match record_type {
        // hickory knows DHCID (49) by number only.
        RecordType::Unknown(49) => Some(StaticType::Dhcid),
        RecordType::Unknown(_) => None,
        known => known.to_string().parse().ok(),
    }
}

/// The served type of a record type, if this service serves it.
fn served_type(record_type: RecordType) -> Option<ServedType> {
    if record_type == RecordType::SOA {
        return Some(ServedType::Soa);
    }
    static_type(record_type).map(ServedType::Stored)
}

/// The content of `data` in the presentation format the store keeps for `record_type`.
fn content(record_type: StaticType, data: &RData) -> Result<String, String> {
    let text = match data {
        // Each character-string quoted, as `record add` keeps them.
        RData::TXT(txt) => txt
            .iter()
            .map(|string| quote(string))
            .collect::<Vec<_>>()
            .join(" "),
        // hickory has no DHCID type: its bytes, in its presentation format (base64).
        RData::Unknown { rdata, .. } if record_type == StaticType::Dhcid => {
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, rdata.anything())
        }
        other => other.to_string(),
    };
    normalize_content(record_type, &text)
}

/// The prerequisites (§2.4, §3.2): each on a name in `zone`.
pub fn prerequisites(message: &Message, zone: &str) -> Result<Vec<Prerequisite>, Refusal> {
    let mut found = Vec::new();
    // §3.2.3: value-dependent prerequisites of one RRset are compared together.
    let mut exact: Vec<((String, ServedType), Vec<String>)> = Vec::new();
    for record in message.answers() {
        let name = plain(record.name());
        if !is_within(&name, zone) {
            return Err(Refusal::new(
                ResponseCode::NotZone,
                format!("prerequisite on {name}, outside {zone}"),
            ));
        }
        if record.ttl() != 0 {
            return Err(Refusal::new(
                ResponseCode::FormErr,
                "a prerequisite's TTL must be 0",
            ));
        }
        let empty = matches!(record.data(), RData::Update0(_));
        let record_type = record.record_type();
        let prerequisite = match (record.dns_class(), record_type, empty) {
            (DNSClass::ANY, RecordType::ANY, true) => Prerequisite::NameInUse(name),
            (DNSClass::NONE, RecordType::ANY, true) => Prerequisite::NameNotInUse(name),
            (DNSClass::ANY, _, true) => match served_type(record_type) {
                Some(served) => Prerequisite::RrsetExists(name, served),
                None => Prerequisite::UnservedExists(name),
            },
            (DNSClass::NONE, _, true) => match served_type(record_type) {
                Some(served) => Prerequisite::RrsetAbsent(name, served),
                // Never served: never there.
                None => continue,
            },
            (DNSClass::IN, _, false) => {
                let Some(ServedType::Stored(stored)) = served_type(record_type) else {
                    return Err(Refusal::new(
                        ResponseCode::NotImp,
                        format!("a value-dependent prerequisite on {record_type}"),
                    ));
                };
                let value = content(stored, record.data())
                    .map_err(|why| Refusal::new(ResponseCode::FormErr, why))?;
                let key = (name, ServedType::Stored(stored));
                match exact.iter_mut().find(|(held, _)| *held == key) {
                    Some((_, values)) => values.push(value),
                    None => exact.push((key, vec![value])),
                }
                continue;
            }
            _ => {
                return Err(Refusal::new(
                    ResponseCode::FormErr,
                    "a prerequisite of an unknown form",
                ));
            }
        };
        found.push(prerequisite);
    }
    found.extend(
        exact
            .into_iter()
            .map(|((name, record_type), values)| Prerequisite::RrsetIs(name, record_type, values)),
    );
    Ok(found)
}

/// One record of the update section, as §3.4.2 reads it.
enum Operation<'a> {
    /// Class IN: add the record.
    Add(&'a RData),
    /// Class ANY, type ANY: delete every RRset at the name.
    DeleteName,
    /// Class ANY: delete the RRset.
    DeleteRrset,
    /// Class NONE: delete the record.
    DeleteRecord(&'a RData),
}

/// §3.4.1's prescan of one update record: its form, and that its name is in `zone`.
fn operation<'a>(record: &'a Record, zone: &str) -> Result<(String, Operation<'a>), Refusal> {
    let name = plain(record.name());
    if !is_within(&name, zone) {
        return Err(Refusal::new(
            ResponseCode::NotZone,
            format!("an update of {name}, outside {zone}"),
        ));
    }
    let record_type = record.record_type();
    let meta = matches!(
        record_type,
        RecordType::ANY | RecordType::AXFR | RecordType::IXFR | RecordType::OPT
    );
    let empty = matches!(record.data(), RData::Update0(_));
    let formerr = |why: &str| Err(Refusal::new(ResponseCode::FormErr, why.to_string()));
    let operation = match record.dns_class() {
        DNSClass::IN if !meta && !empty => Operation::Add(record.data()),
        DNSClass::ANY if record.ttl() == 0 && empty => {
            if record_type == RecordType::ANY {
                Operation::DeleteName
            } else if meta {
                return formerr("a delete of a meta type");
            } else {
                Operation::DeleteRrset
            }
        }
        DNSClass::NONE if record.ttl() == 0 && !meta && !empty => {
            Operation::DeleteRecord(record.data())
        }
        _ => return formerr("an update record of an unknown form"),
    };
    Ok((name, operation))
}

/// The update section (§3.4), checked against `scope` in `zone` (`zone_id`): the changes, or
/// why the whole message is refused.
pub fn changes(
    message: &Message,
    zone: &str,
    zone_id: i64,
    scope: &TsigScope,
) -> Result<Changes, Refusal> {
    let refused = |why: String| Refusal::new(ResponseCode::Refused, why);
    let mut changes = Changes::default();
    for record in message.name_servers() {
        let (name, operation) = operation(record, zone)?;
        let record_type = record.record_type();
        match scope {
            TsigScope::Account { .. } => {
                if let Some(host) = host_of(&name) {
                    let change = match operation {
                        Operation::Add(data) if record_type == RecordType::TXT => {
                            ChallengeChange::Present(
                                challenge_value(data)
                                    .ok_or_else(|| refused(format!("{name}: not an ACME value")))?,
                            )
                        }
                        Operation::DeleteRecord(data) if record_type == RecordType::TXT => {
                            ChallengeChange::CleanUp(Some(
                                challenge_value(data)
                                    .ok_or_else(|| refused(format!("{name}: not an ACME value")))?,
                            ))
                        }
                        Operation::DeleteRrset if record_type == RecordType::TXT => {
                            ChallengeChange::CleanUp(None)
                        }
                        Operation::DeleteName => ChallengeChange::CleanUp(None),
                        _ => {
                            return Err(refused(format!(
                                "{name} {record_type}: an account key changes TXT only at \
                                 _acme-challenge names"
                            )));
                        }
                    };
                    changes.challenges.push((host, change));
                    continue;
                }
                let host: DomainName = name
                    .parse()
                    .map_err(|_| refused(format!("{name} is not a host name")))?;
                let index = match changes.hosts.iter().position(|change| change.host == host) {
                    Some(index) => index,
                    None => {
                        changes.hosts.push(HostChange {
                            host,
                            v4: FamilyChange::Keep,
                            v6: FamilyChange::Keep,
                        });
                        changes.hosts.len() - 1
                    }
                };
                let change = &mut changes.hosts[index];
                host_operation(change, record_type, operation)
                    .map_err(|why| refused(format!("{name} {record_type}: {why}")))?;
            }
            TsigScope::Zone {
                zone_id: key_zone,
                subtree,
                types,
            } => {
                if *key_zone != zone_id {
                    return Err(refused(format!("the key is not for {zone}")));
                }
                if let Some(subtree) = subtree {
                    if !is_within(&name, subtree) {
                        return Err(refused(format!("{name} is outside the key's {subtree}")));
                    }
                }
                let allowed = |record_type: RecordType| {
                    static_type(record_type)
                        .filter(|parsed| types.contains(parsed))
                        .ok_or_else(|| {
                            refused(format!("{name} {record_type}: not a type of the key"))
                        })
                };
                changes.statics.push(match operation {
                    Operation::Add(data) => {
                        let record_type = allowed(record_type)?;
                        StaticChange::Add {
                            content: content(record_type, data)
                                .map_err(|why| Refusal::new(ResponseCode::FormErr, why))?,
                            name,
                            record_type,
                            ttl: record.ttl(),
                        }
                    }
                    Operation::DeleteRecord(data) => {
                        let record_type = allowed(record_type)?;
                        StaticChange::Remove {
                            content: Some(
                                content(record_type, data)
                                    .map_err(|why| Refusal::new(ResponseCode::FormErr, why))?,
                            ),
                            name,
                            record_type: Some(record_type),
                        }
                    }
                    Operation::DeleteRrset => StaticChange::Remove {
                        record_type: Some(allowed(record_type)?),
                        name,
                        content: None,
                    },
                    Operation::DeleteName => StaticChange::Remove {
                        name,
                        record_type: None,
                        content: None,
                    },
                });
            }
        }
    }
    Ok(changes)
}

/// The ACME value a TXT record carries: one string, base64url.
fn challenge_value(data: &RData) -> Option<String> {
    let RData::TXT(txt) = data else {
        return None;
    };
    let [value] = txt.txt_data() else {
        return None;
    };
    let value = std::str::from_utf8(value).ok()?;
    valid_value(value).then(|| value.to_string())
}

/// Applies one update record to a host's change, in message order (§3.4.2: "a delete of the
/// RRset, then an add" is how ddclient and nsupdate users set an address).
fn host_operation(
    change: &mut HostChange,
    record_type: RecordType,
    operation: Operation<'_>,
) -> Result<(), String> {
    let families: Vec<&mut FamilyChange> = match (record_type, &operation) {
        (RecordType::A, _) => vec![&mut change.v4],
        (RecordType::AAAA, _) => vec![&mut change.v6],
        (RecordType::ANY, Operation::DeleteName) => vec![&mut change.v4, &mut change.v6],
        _ => return Err("an account key changes A and AAAA of its hosts".into()),
    };
    for family in families {
        *family = match (&operation, *family) {
            (Operation::Add(data), current) => {
                let ip = match data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                    _ => return Err("not an address".into()),
                };
                match current {
                    FamilyChange::Set(other) if other != ip => {
                        return Err(format!(
                            "a DDNS host holds one address per family ({other} and {ip})"
                        ));
                    }
                    _ => FamilyChange::Set(ip),
                }
            }
            (Operation::DeleteName | Operation::DeleteRrset, _) => FamilyChange::Remove(None),
            (Operation::DeleteRecord(data), current) => {
                let ip = match data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                    _ => return Err("not an address".into()),
                };
                match current {
                    FamilyChange::Set(set) if set == ip => FamilyChange::Remove(Some(ip)),
                    FamilyChange::Set(set) => FamilyChange::Set(set),
                    FamilyChange::Remove(None) => FamilyChange::Remove(None),
                    FamilyChange::Keep | FamilyChange::Remove(Some(_)) => {
                        FamilyChange::Remove(Some(ip))
                    }
                }
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use hickory_proto::op::{OpCode, Query};
    use hickory_proto::rr::rdata::{A, TXT};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn update(zone: &str, records: Vec<Record>) -> Message {
        let mut message = Message::new();
        message.set_op_code(OpCode::Update);
        let mut query = Query::query(name(zone), RecordType::SOA);
        query.set_query_class(DNSClass::IN);
        message.add_query(query);
        message.add_name_servers(records);
        message
    }

    fn add_a(host: &str, ip: &str) -> Record {
        Record::from_rdata(name(host), 300, RData::A(A(ip.parse().unwrap())))
    }

    fn delete_rrset(host: &str, record_type: RecordType) -> Record {
        let mut record = Record::update0(name(host), 0, record_type);
        record.set_dns_class(DNSClass::ANY);
        record
    }

    const ACCOUNT: TsigScope = TsigScope::Account { user_id: 1 };

    #[test]
    fn an_account_key_sets_addresses_and_acme_values_of_names_in_the_zone() {
        let message = update(
            "dyn.example.",
            vec![
                delete_rrset("home.dyn.example.", RecordType::A),
                add_a("home.dyn.example.", "192.0.2.7"),
                Record::from_rdata(
                    name("_acme-challenge.home.dyn.example."),
                    60,
                    RData::TXT(TXT::new(vec![
                        "LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM".into(),
                    ])),
                ),
            ],
        );
        assert_eq!(zone_of(&message).unwrap(), "dyn.example");
        let changes = changes(&message, "dyn.example", 7, &ACCOUNT).unwrap();
        assert_eq!(
            changes.hosts,
            [HostChange {
                host: "home.dyn.example".parse().unwrap(),
                v4: FamilyChange::Set("192.0.2.7".parse().unwrap()),
                v6: FamilyChange::Keep,
            }]
        );
        assert_eq!(changes.challenges.len(), 1);
    }

    #[test]
    fn what_a_key_may_not_change_refuses_the_whole_message() {
        let refusal = |records, scope: &TsigScope| {
            changes(&update("dyn.example.", records), "dyn.example", 7, scope)
                .unwrap_err()
                .rcode
        };
        // Two addresses for one host.
        assert_eq!(
            refusal(
                vec![
                    add_a("h.dyn.example.", "192.0.2.1"),
                    add_a("h.dyn.example.", "192.0.2.2")
                ],
                &ACCOUNT
            ),
            ResponseCode::Refused
        );
        // A type an account never changes.
        let mx = Record::from_rdata(
            name("h.dyn.example."),
            60,
            RData::MX(hickory_proto::rr::rdata::MX::new(10, name("mail.example."))),
        );
        assert_eq!(refusal(vec![mx], &ACCOUNT), ResponseCode::Refused);
        // Outside the zone.
        assert_eq!(
            refusal(vec![add_a("h.other.example.", "192.0.2.1")], &ACCOUNT),
            ResponseCode::NotZone
        );
        // A subtree key beyond its subtree, and a type it lacks.
        let subtree = TsigScope::Zone {
            zone_id: 7,
            subtree: Some("lab.dyn.example".into()),
            types: vec![StaticType::Txt],
        };
        assert_eq!(
            refusal(vec![add_a("x.dyn.example.", "192.0.2.1")], &subtree),
            ResponseCode::Refused
        );
        assert_eq!(
            refusal(vec![add_a("x.lab.dyn.example.", "192.0.2.1")], &subtree),
            ResponseCode::Refused
        );
        // A zone key of another zone.
        let other = TsigScope::Zone {
            zone_id: 8,
            subtree: None,
            types: vec![StaticType::A],
        };
        assert_eq!(
            refusal(vec![add_a("x.dyn.example.", "192.0.2.1")], &other),
            ResponseCode::Refused
        );
    }

    #[test]
    fn static_contents_take_the_stores_form() {
        let txt = RData::TXT(TXT::new(vec!["a \"b\"".into(), "c".into()]));
        assert_eq!(
            content(StaticType::Txt, &txt).unwrap(),
            "\"a \\\"b\\\"\" \"c\""
        );
        let cname = RData::CNAME(hickory_proto::rr::rdata::CNAME(name("Target.Example.")));
        assert_eq!(
            content(StaticType::Cname, &cname).unwrap(),
            "target.example."
        );
    }
}
