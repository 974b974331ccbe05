//! Requests from pdns, decoded with serde into [`Query`].

use serde_json::Value;

use crate::model::dnssec::{KSK_FLAGS, KeyState, NewZoneKey, ZSK_FLAGS};
use crate::model::rdata::ServedType;
use crate::model::{DomainNameError, check_name_lengths};

/// A request from pdns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Sent first on every unix-socket connection; answered `true`.
    Initialize,
    /// Records at a name (§4 lookup).
    Lookup {
        /// Owner name as asked, any case, with the final dot.
        qname: String,
        /// `ANY`, or the type to filter on.
        qtype: QType,
        /// The zone's id, or -1 when pdns does not know the zone yet (the SOA walk).
        zone_id: i64,
    },
    /// The whole zone, for AXFR (§4 list).
    List {
        /// Zone apex with the final dot.
        zonename: String,
    },
    /// Every zone, for pdns's zone cache (§4 getAllDomains).
    GetAllDomains,
    /// One zone's DomainInfo (§4 getDomainInfo).
    GetDomainInfo {
        /// Zone apex with the final dot.
        name: String,
    },
    /// A zone's metadata, all kinds (§4 getAllDomainMetadata).
    GetAllDomainMetadata {
        /// Zone apex with the final dot.
        name: String,
    },
    /// A zone's metadata of one kind (§4 getDomainMetadata).
    GetDomainMetadata {
        /// Zone apex with the final dot.
        name: String,
        /// The kind, e.g. `ALSO-NOTIFY`.
        kind: String,
    },
    /// The zones whose serial changed since their secondaries were notified (§4 primary).
    GetUpdatedMasters,
    /// Secondaries of zone `id` were notified of `serial` (§4 primary).
    SetNotified {
        /// Zone id.
        id: i64,
        /// The serial notified (REST sends it as `2024010102.000000`).
        serial: u32,
    },
    /// A zone's DNSSEC keys (§14 getDomainKeys).
    GetDomainKeys {
        /// Zone apex with the final dot.
        name: String,
    },
    /// A new DNSSEC key (§14 addDomainKey): answered with its id.
    AddDomainKey {
        /// Zone apex with the final dot.
        name: String,
        /// The key.
        key: NewZoneKey,
    },
    /// A key's state changed, or the key removed (§14 activate/deactivate/publish/unpublish/
    /// removeDomainKey).
    ChangeDomainKey {
        /// Zone apex with the final dot.
        name: String,
        /// The key's id.
        id: i64,
        /// What changes.
        change: KeyChange,
    },
    /// A zone's metadata of one kind replaced; no values deletes it (§4 setDomainMetadata).
    SetDomainMetadata {
        /// Zone apex with the final dot.
        name: String,
        /// The kind, e.g. `NSEC3PARAM`.
        kind: String,
        /// The values, in order.
        values: Vec<String>,
    },
    /// The NSEC neighbours of a name (§14 getBeforeAndAfterNamesAbsolute), for NSEC denial
    /// (pdns calls it for NSEC and non-narrow NSEC3 zones only).
    GetBeforeAndAfterNames {
        /// The zone's id.
        id: i64,
        /// The name relative to the zone, lower case, with the final dot (`.`: the apex).
        qname: String,
    },
    /// One TSIG key (§4 getTSIGKey).
    GetTsigKey {
        /// The key's name with the final dot.
        name: String,
    },
    /// Every TSIG key (§4 getTSIGKeys).
    GetTsigKeys,
    /// `setTSIGKey` or `deleteTSIGKey`: keys are made with `certadns-ddns tsig`, refused.
    ChangeTsigKey,
    /// `startTransaction`: `pdnsutil secure-zone` and rectify wrap their writes in one, with
    /// domain id -1 ("keep the records"); an id ≥ 0 means "replace the zone's records", which
    /// this backend never lets pdns do.
    StartTransaction {
        /// The domain id; -1 for "keep the records".
        domain_id: i64,
    },
    /// `commitTransaction` or `abortTransaction`.
    EndTransaction,
    /// A method this backend does not implement: answered `false`.
    Unknown {
        /// Its name, for the log.
        method: String,
    },
}

/// The remote-backend methods as pdns names them, in the order of [`Query::method_index`]
/// (for the metrics; `unknown` for any other).
pub const METHOD_NAMES: [&str; 23] = [
    "initialize",
    "lookup",
    "list",
    "getAllDomains",
    "getDomainInfo",
    "getAllDomainMetadata",
    "getDomainMetadata",
    "getUpdatedMasters",
    "setNotified",
    "getDomainKeys",
    "addDomainKey",
    "activateDomainKey",
    "deactivateDomainKey",
    "publishDomainKey",
    "unpublishDomainKey",
    "removeDomainKey",
    "setDomainMetadata",
    "getBeforeAndAfterNamesAbsolute",
    "getTSIGKey",
    "getTSIGKeys",
    "startTransaction",
    "commitTransaction",
    "unknown",
];

/// Methods [`Wire`] knows under a second name, counted under the first: pdns 5's `APILookup`
/// is a lookup (its HTTP API's), the other TSIG and transaction calls share a row.
const ALIASES: &[&str] = &[
    "APILookup",
    "setTSIGKey",
    "deleteTSIGKey",
    "abortTransaction",
];

/// What [`Query::ChangeDomainKey`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// Sign with it, or not; publish its DNSKEY, or not.
    State(KeyState),
    /// Forget it.
    Remove,
}

impl Query {
    /// The name asked for, when this is a lookup (as pdns sent it).
    pub fn lookup_name(&self) -> Option<&str> {
        match self {
            Self::Lookup { qname, .. } => Some(qname),
            _ => None,
        }
    }

    /// The position of this query's method in [`METHOD_NAMES`].
    pub fn method_index(&self) -> usize {
        match self {
            Self::Initialize => 0,
            Self::Lookup { .. } => 1,
            Self::List { .. } => 2,
            Self::GetAllDomains => 3,
            Self::GetDomainInfo { .. } => 4,
            Self::GetAllDomainMetadata { .. } => 5,
            Self::GetDomainMetadata { .. } => 6,
            Self::GetUpdatedMasters => 7,
            Self::SetNotified { .. } => 8,
            Self::GetDomainKeys { .. } => 9,
            Self::AddDomainKey { .. } => 10,
            Self::ChangeDomainKey { change, .. } => match change {
                KeyChange::State(KeyState::Active(true)) => 11,
                KeyChange::State(KeyState::Active(false)) => 12,
                KeyChange::State(KeyState::Published(true)) => 13,
                KeyChange::State(KeyState::Published(false)) => 14,
                KeyChange::Remove => 15,
            },
            Self::SetDomainMetadata { .. } => 16,
            Self::GetBeforeAndAfterNames { .. } => 17,
            Self::GetTsigKey { .. } => 18,
            Self::GetTsigKeys | Self::ChangeTsigKey => 19,
            Self::StartTransaction { .. } => 20,
            Self::EndTransaction => 21,
            Self::Unknown { .. } => 22,
        }
    }
}

/// The type a `lookup` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    /// Every record at the name.
    Any,
    /// Records of this type.
    Is(ServedType),
    /// A type this backend never serves (DS, DNSKEY, `TYPE65`...): nothing.
    Unserved,
}

impl QType {
    /// The type pdns names, in any case.
    pub fn parse(text: &str) -> Self {
        if text.eq_ignore_ascii_case("ANY") {
            Self::Any
        } else {
            text.parse().map_or(Self::Unserved, Self::Is)
        }
    }
}

/// Why a request could not be decoded. Answered `{"result": false}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON object with a string `method`.
    #[error("not a remote-backend request: {0}")]
    Envelope(String),
    /// A parameter the method needs is missing or of the wrong type.
    #[error("{method}: missing or invalid parameter {parameter:?}")]
    Parameter {
        /// The method.
        method: String,
        /// The parameter.
        parameter: &'static str,
    },
    /// A name no DNS message can carry (pdns never sends one).
    #[error("{method}: {parameter:?} is not a DNS name: {reason}")]
    Name {
        /// The method.
        method: String,
        /// The parameter.
        parameter: &'static str,
        /// What is wrong with it.
        reason: DomainNameError,
    },
}

/// Checks that `name` (presentation form, final dot optional, the root `.` included) fits a
/// DNS message ([`check_name_lengths`]). Every later step (zone walk, index) is then bounded
/// by these lengths, whatever a peer sends.
pub fn check_dns_name(name: &str) -> Result<(), DomainNameError> {
    if name == "." {
        return Ok(());
    }
    check_name_lengths(name.strip_suffix('.').unwrap_or(name))
}

/// Longest `qtype` or metadata `kind` taken (pdns's longest type name is 10 octets).
const MAX_TOKEN_BYTES: usize = 64;

impl Query {
    /// Decodes a request object `{"method": ..., "parameters": {...}}` (unix socket, post_json).
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let method = || {
            /// The method alone, read again only to report an error or an unknown method.
            #[derive(serde::Deserialize)]
            struct Method {
                method: String,
            }
            serde_json::from_slice::<Method>(bytes)
                .map(|m| m.method)
                .ok()
        };
        let mut decoder = serde_json::Deserializer::from_slice(bytes);
        let wire = serde_path_to_error::deserialize(&mut decoder)
            .map_err(|error| decode_error(&error, method()));
        let wire = wire.and_then(|wire| {
            decoder
                .end()
                .map(|()| wire)
                .map_err(|error| DecodeError::Envelope(error.to_string()))
        });
        Self::from_wire(wire, method)
    }

    /// Decodes a method name and its parameters object (REST mode, which sends them apart).
    pub fn from_method(method: &str, parameters: &Value) -> Result<Self, DecodeError> {
        let request = serde_json::json!({"method": method, "parameters": parameters});
        let wire = serde_path_to_error::deserialize(&request)
            .map_err(|error| decode_error(&error, Some(method.to_string())));
        Self::from_wire(wire, || Some(method.to_string()))
    }

    /// Checks what serde cannot: names that fit a DNS message, short tokens. An unknown
    /// method is not an error, whatever its parameters (serde's fallback variant takes none).
    fn from_wire(
        wire: Result<Wire, DecodeError>,
        method: impl FnOnce() -> Option<String>,
    ) -> Result<Self, DecodeError> {
        let wire = match wire {
            Ok(Wire::Unknown) => {
                return Ok(Self::Unknown {
                    method: method().unwrap_or_default(),
                });
            }
            Ok(wire) => wire,
            Err(error) => {
                return match method() {
                    Some(method) if !is_known(&method) => Ok(Self::Unknown { method }),
                    _ => Err(error),
                };
            }
        };
        let name = |method: &str, parameter: &'static str, name: String| {
            check_dns_name(&name).map_err(|reason| DecodeError::Name {
                method: method.to_string(),
                parameter,
                reason,
            })?;
            Ok::<_, DecodeError>(name)
        };
        let token = |method: &str, parameter: &'static str, token: String| {
            if token.len() > MAX_TOKEN_BYTES {
                return Err(DecodeError::Parameter {
                    method: method.to_string(),
                    parameter,
                });
            }
            Ok(token)
        };
        Ok(match wire {
            Wire::Initialize(_) => Self::Initialize,
            Wire::Lookup(p) => Self::Lookup {
                qname: name("lookup", "qname", p.qname)?,
                qtype: QType::parse(&token("lookup", "qtype", p.qtype)?),
                zone_id: p.zone_id.unwrap_or(-1),
            },
            Wire::List(p) => Self::List {
                zonename: name("list", "zonename", p.zonename)?,
            },
            Wire::GetAllDomains(_) => Self::GetAllDomains,
            Wire::GetDomainInfo(p) => Self::GetDomainInfo {
                name: name("getDomainInfo", "name", p.name)?,
            },
            Wire::GetAllDomainMetadata(p) => Self::GetAllDomainMetadata {
                name: name("getAllDomainMetadata", "name", p.name)?,
            },
            Wire::GetDomainMetadata(p) => Self::GetDomainMetadata {
                name: name("getDomainMetadata", "name", p.name)?,
                kind: token("getDomainMetadata", "kind", p.kind)?,
            },
            Wire::GetUpdatedMasters(_) => Self::GetUpdatedMasters,
            Wire::SetNotified(p) => Self::SetNotified {
                id: p.id,
                serial: u32::try_from(p.serial).map_err(|_| DecodeError::Parameter {
                    method: "setNotified".into(),
                    parameter: "serial",
                })?,
            },
            Wire::GetDomainKeys(p) => Self::GetDomainKeys {
                name: name("getDomainKeys", "name", p.name)?,
            },
            Wire::AddDomainKey(p) => {
                let invalid = |parameter| DecodeError::Parameter {
                    method: "addDomainKey".into(),
                    parameter,
                };
                let flags = u16::try_from(p.key.flags)
                    .ok()
                    .filter(|flags| [KSK_FLAGS, ZSK_FLAGS].contains(flags))
                    .ok_or_else(|| invalid("flags"))?;
                if !p.key.content.starts_with("Private-key-format:")
                    || p.key.content.len() > MAX_KEY_BYTES
                {
                    return Err(invalid("content"));
                }
                Self::AddDomainKey {
                    name: name("addDomainKey", "name", p.name)?,
                    key: NewZoneKey {
                        flags,
                        active: p.key.active,
                        published: p.key.published.unwrap_or(true),
                        content: p.key.content,
                    },
                }
            }
            Wire::ActivateDomainKey(p) => {
                key_change(&name, p, KeyChange::State(KeyState::Active(true)))?
            }
            Wire::DeactivateDomainKey(p) => {
                key_change(&name, p, KeyChange::State(KeyState::Active(false)))?
            }
            Wire::PublishDomainKey(p) => {
                key_change(&name, p, KeyChange::State(KeyState::Published(true)))?
            }
            Wire::UnpublishDomainKey(p) => {
                key_change(&name, p, KeyChange::State(KeyState::Published(false)))?
            }
            Wire::RemoveDomainKey(p) => key_change(&name, p, KeyChange::Remove)?,
            Wire::SetDomainMetadata(p) => {
                let values = p.value.unwrap_or_default();
                if values.len() > MAX_METADATA_VALUES
                    || values.iter().any(|value| value.len() > MAX_METADATA_BYTES)
                {
                    return Err(DecodeError::Parameter {
                        method: "setDomainMetadata".into(),
                        parameter: "value",
                    });
                }
                Self::SetDomainMetadata {
                    name: name("setDomainMetadata", "name", p.name)?,
                    kind: token("setDomainMetadata", "kind", p.kind)?,
                    values,
                }
            }
            Wire::GetBeforeAndAfterNamesAbsolute(p) => Self::GetBeforeAndAfterNames {
                id: p.id,
                qname: name("getBeforeAndAfterNamesAbsolute", "qname", p.qname)?,
            },
            Wire::GetTsigKey(p) => Self::GetTsigKey {
                name: name("getTSIGKey", "name", p.name)?,
            },
            Wire::GetTsigKeys(_) => Self::GetTsigKeys,
            Wire::SetTsigKey(_) | Wire::DeleteTsigKey(_) => Self::ChangeTsigKey,
            Wire::StartTransaction(p) => Self::StartTransaction {
                domain_id: p.domain_id.unwrap_or(-1),
            },
            Wire::CommitTransaction(_) | Wire::AbortTransaction(_) => Self::EndTransaction,
            Wire::Unknown => unreachable!("answered above"),
        })
    }
}

/// Whether [`Wire`] knows `method`: all of [`METHOD_NAMES`] but `unknown`, and [`ALIASES`].
fn is_known(method: &str) -> bool {
    METHOD_NAMES[..METHOD_NAMES.len() - 1].contains(&method) || ALIASES.contains(&method)
}

/// Longest private key taken (an RSA-4096 key in BIND's text is about 3.3 KB).
const MAX_KEY_BYTES: usize = 8192;
/// Most metadata values taken in one `setDomainMetadata`.
use crate::model::dnssec::MAX_METADATA_VALUES;
/// Longest metadata value taken.
const MAX_METADATA_BYTES: usize = 4096;

/// A key's state change or removal, decoded.
fn key_change(
    name: &impl Fn(&str, &'static str, String) -> Result<String, DecodeError>,
    p: KeyParameters,
    change: KeyChange,
) -> Result<Query, DecodeError> {
    let method = METHOD_NAMES[Query::ChangeDomainKey {
        name: String::new(),
        id: 0,
        change,
    }
    .method_index()];
    Ok(Query::ChangeDomainKey {
        name: name(method, "name", p.name)?,
        id: p.id,
        change,
    })
}

/// A request as serde reads it: the method selects the parameters' shape; unknown parameters
/// (pdns sends `remote`, `local`, `include_disabled`...) are ignored.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "method", content = "parameters")]
enum Wire {
    #[serde(rename = "initialize")]
    Initialize(#[serde(default)] Ignored),
    #[serde(rename = "lookup", alias = "APILookup")]
    Lookup(LookupParameters),
    #[serde(rename = "list")]
    List(ListParameters),
    #[serde(rename = "getAllDomains")]
    GetAllDomains(#[serde(default)] Ignored),
    #[serde(rename = "getDomainInfo")]
    GetDomainInfo(NameParameters),
    #[serde(rename = "getAllDomainMetadata")]
    GetAllDomainMetadata(NameParameters),
    #[serde(rename = "getDomainMetadata")]
    GetDomainMetadata(MetadataParameters),
    #[serde(rename = "getUpdatedMasters")]
    GetUpdatedMasters(#[serde(default)] Ignored),
    #[serde(rename = "setNotified")]
    SetNotified(NotifiedParameters),
    #[serde(rename = "getDomainKeys")]
    GetDomainKeys(NameParameters),
    #[serde(rename = "addDomainKey")]
    AddDomainKey(AddKeyParameters),
    #[serde(rename = "activateDomainKey")]
    ActivateDomainKey(KeyParameters),
    #[serde(rename = "deactivateDomainKey")]
    DeactivateDomainKey(KeyParameters),
    #[serde(rename = "publishDomainKey")]
    PublishDomainKey(KeyParameters),
    #[serde(rename = "unpublishDomainKey")]
    UnpublishDomainKey(KeyParameters),
    #[serde(rename = "removeDomainKey")]
    RemoveDomainKey(KeyParameters),
    #[serde(rename = "setDomainMetadata")]
    SetDomainMetadata(SetMetadataParameters),
    #[serde(rename = "getBeforeAndAfterNamesAbsolute")]
    GetBeforeAndAfterNamesAbsolute(NeighbourParameters),
    #[serde(rename = "getTSIGKey")]
    GetTsigKey(NameParameters),
    #[serde(rename = "getTSIGKeys")]
    GetTsigKeys(#[serde(default)] Ignored),
    #[serde(rename = "setTSIGKey")]
    SetTsigKey(#[serde(default)] Ignored),
    #[serde(rename = "deleteTSIGKey")]
    DeleteTsigKey(#[serde(default)] Ignored),
    #[serde(rename = "startTransaction")]
    StartTransaction(TransactionParameters),
    #[serde(rename = "commitTransaction")]
    CommitTransaction(#[serde(default)] Ignored),
    #[serde(rename = "abortTransaction")]
    AbortTransaction(#[serde(default)] Ignored),
    /// Any other method; its name is read apart, for the log.
    #[serde(other)]
    Unknown,
}

/// Parameters that are not used.
#[derive(Debug, Default, serde::Deserialize)]
struct Ignored {}

/// `lookup`'s parameters.
#[derive(Debug, serde::Deserialize)]
struct LookupParameters {
    qname: String,
    qtype: String,
    #[serde(rename = "zone-id", default, deserialize_with = "lenient_integer")]
    zone_id: Option<i64>,
}

/// `list`'s parameters.
#[derive(Debug, serde::Deserialize)]
struct ListParameters {
    zonename: String,
}

/// A zone's name, the one parameter of several methods.
#[derive(Debug, serde::Deserialize)]
struct NameParameters {
    name: String,
}

/// `getDomainMetadata`'s parameters.
#[derive(Debug, serde::Deserialize)]
struct MetadataParameters {
    name: String,
    kind: String,
}

/// `addDomainKey`'s parameters (REST sends the key's fields flat; `http.rs` nests them).
#[derive(Debug, serde::Deserialize)]
struct AddKeyParameters {
    name: String,
    key: KeyData,
}

/// A key as `addDomainKey` sends it: `active` and `published` as booleans, or `0`/`1` in
/// REST's form fields.
#[derive(Debug, serde::Deserialize)]
struct KeyData {
    #[serde(deserialize_with = "strict_integer")]
    flags: i64,
    #[serde(deserialize_with = "flag")]
    active: bool,
    #[serde(default, deserialize_with = "optional_flag")]
    published: Option<bool>,
    content: String,
}

/// The parameters of the calls on one key: the zone and the key's id.
#[derive(Debug, serde::Deserialize)]
struct KeyParameters {
    name: String,
    #[serde(deserialize_with = "strict_integer")]
    id: i64,
}

/// `getBeforeAndAfterNamesAbsolute`'s parameters.
#[derive(Debug, serde::Deserialize)]
struct NeighbourParameters {
    #[serde(deserialize_with = "strict_integer")]
    id: i64,
    qname: String,
}

/// `setDomainMetadata`'s parameters.
#[derive(Debug, serde::Deserialize)]
struct SetMetadataParameters {
    name: String,
    kind: String,
    #[serde(default)]
    value: Option<Vec<String>>,
}

/// `startTransaction`'s parameters (the `domain` and `trxid` are not needed).
#[derive(Debug, serde::Deserialize)]
struct TransactionParameters {
    #[serde(default, deserialize_with = "lenient_integer")]
    domain_id: Option<i64>,
}

/// A boolean as pdns sends one: `true`/`false`, `1`/`0`, or `"1"`/`"0"` (§14).
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    optional_flag(deserializer)?.ok_or_else(|| serde::de::Error::custom("not a boolean"))
}

/// An optional [`flag`]; `null` is absent.
fn optional_flag<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    match <Value as serde::Deserialize>::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Bool(value) => Ok(Some(value)),
        other => match integer(&other) {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(serde::de::Error::custom("not a boolean")),
        },
    }
}

/// `setNotified`'s parameters.
#[derive(Debug, serde::Deserialize)]
struct NotifiedParameters {
    #[serde(deserialize_with = "strict_integer")]
    id: i64,
    #[serde(deserialize_with = "strict_integer")]
    serial: i64,
}

/// An optional integer in any of the forms of [`integer`]; anything else counts as absent.
fn lenient_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    Ok(integer(&<Value as serde::Deserialize>::deserialize(
        deserializer,
    )?))
}

/// An integer in any of the forms of [`integer`].
fn strict_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    integer(&<Value as serde::Deserialize>::deserialize(deserializer)?)
        .ok_or_else(|| serde::de::Error::custom("not an integer"))
}

/// The parameters pdns sends that this backend reads, for naming the one that failed.
const PARAMETERS: &[&str] = &[
    "qname",
    "qtype",
    "zone-id",
    "zonename",
    "name",
    "kind",
    "id",
    "serial",
    "key",
    "flags",
    "active",
    "published",
    "content",
    "value",
    "domain_id",
    "parameters",
];

/// A serde error as a [`DecodeError`]: inside `parameters` (or `parameters` missing), the
/// parameter at fault, by its path or a missing field's name; anything else is the envelope.
fn decode_error(
    error: &serde_path_to_error::Error<serde_json::Error>,
    method: Option<String>,
) -> DecodeError {
    use serde_path_to_error::Segment;
    let message = error.inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let segments: Vec<&Segment> = error.path().iter().collect();
    let named = match segments.as_slice() {
        [Segment::Map { key }, Segment::Map { key: parameter }, ..] if key == "parameters" => {
            Some(parameter.as_str())
        }
        [Segment::Map { key }, ..] if key == "parameters" => missing,
        [] if missing == Some("parameters") => Some("parameters"),
        _ => return DecodeError::Envelope(message),
    };
    DecodeError::Parameter {
        method: method.unwrap_or_default(),
        parameter: PARAMETERS
            .iter()
            .find(|known| Some(**known) == named)
            .copied()
            .unwrap_or("parameters"),
    }
}

/// An integer sent as a JSON number or as a decimal string (REST mode sends strings, and
/// `setNotified` sends `2024010102.000000`).
pub fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| number.as_f64().and_then(whole)),
        Value::String(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| text.trim().parse::<f64>().ok().and_then(whole)),
        _ => None,
    }
}

/// A float that holds a whole number within i64, as that integer.
fn whole(value: f64) -> Option<i64> {
    let in_range = value.fract() == 0.0 && value >= i64::MIN as f64 && value <= i64::MAX as f64;
    #[allow(
        clippy::cast_possible_truncation,
        reason = "checked to be whole and in range"
    )]
    in_range.then_some(value as i64)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_beyond_dns_limits_are_refused_at_decode() {
        let longest_label = "a".repeat(63);
        let longest = format!("{0}.{0}.{0}.{1}.", longest_label, "b".repeat(61));
        assert_eq!(
            longest.len(),
            254,
            "253 octets and the final dot: 255 on the wire"
        );
        for fine in [".", "example.com.", "example.com", longest.as_str()] {
            assert_eq!(check_dns_name(fine), Ok(()), "{fine}");
        }
        let too_long = format!("c{longest}");
        let long_label = format!("{}.example.", "a".repeat(64));
        let huge = "a.".repeat(100_000);
        for bad in [
            too_long.as_str(),
            long_label.as_str(),
            "a..b.",
            "",
            huge.as_str(),
        ] {
            assert!(
                check_dns_name(bad).is_err(),
                "{}",
                &bad[..bad.len().min(20)]
            );
            let request = serde_json::json!({"method": "lookup",
                "parameters": {"qname": bad, "qtype": "ANY", "zone-id": 1}});
            assert!(matches!(
                Query::from_json(request.to_string().as_bytes()),
                Err(DecodeError::Name { .. })
            ));
        }
        let list = serde_json::json!({"method": "list", "parameters": {"zonename": huge}});
        assert!(Query::from_json(list.to_string().as_bytes()).is_err());
        let long_type = serde_json::json!({"method": "lookup",
            "parameters": {"qname": "a.", "qtype": "A".repeat(65)}});
        assert!(Query::from_json(long_type.to_string().as_bytes()).is_err());
    }

    #[test]
    fn lookups_decode_from_json_with_numbers_or_strings() {
        let json = br#"{"method": "lookup", "parameters": {"local": "0.0.0.0", "qname": "www.example.com.", "qtype": "SOA", "real-remote": "0.0.0.0/0", "remote": "0.0.0.0", "zone-id": -1}}"#;
        assert_eq!(
            Query::from_json(json).unwrap(),
            Query::Lookup {
                qname: "www.example.com.".into(),
                qtype: QType::Is(ServedType::Soa),
                zone_id: -1
            }
        );
        let rest = serde_json::json!({"qname": "WwW.ExAmPlE.CoM.", "qtype": "ANY", "zone-id": "1"});
        assert_eq!(
            Query::from_method("lookup", &rest).unwrap(),
            Query::Lookup {
                qname: "WwW.ExAmPlE.CoM.".into(),
                qtype: QType::Any,
                zone_id: 1
            }
        );
    }

    #[test]
    fn other_methods_decode() {
        let list = br#"{"method": "list", "parameters": {"domain_id": 1, "include_disabled": false, "zonename": "example.com."}}"#;
        assert_eq!(
            Query::from_json(list).unwrap(),
            Query::List {
                zonename: "example.com.".into()
            }
        );
        let init = br#"{"method": "initialize", "parameters": {"path": "/run/rb.sock", "timeout": "2000"}}"#;
        assert_eq!(Query::from_json(init).unwrap(), Query::Initialize);
        let notified =
            br#"{"method": "setNotified", "parameters": {"id": 1, "serial": 2024010102}}"#;
        assert_eq!(
            Query::from_json(notified).unwrap(),
            Query::SetNotified {
                id: 1,
                serial: 2_024_010_102
            }
        );
        let rest_form = serde_json::json!({"id": "1", "serial": "2024010102.000000"});
        assert_eq!(
            Query::from_method("setNotified", &rest_form).unwrap(),
            Query::SetNotified {
                id: 1,
                serial: 2_024_010_102
            }
        );
        let metadata = br#"{"method": "getDomainMetadata", "parameters": {"name": "example.com.", "kind": "ALSO-NOTIFY"}}"#;
        assert_eq!(
            Query::from_json(metadata).unwrap(),
            Query::GetDomainMetadata {
                name: "example.com.".into(),
                kind: "ALSO-NOTIFY".into()
            }
        );
        let unknown = br#"{"method": "feedRecord", "parameters": {"rr": {}, "trxid": 1}}"#;
        assert_eq!(
            Query::from_json(unknown).unwrap(),
            Query::Unknown {
                method: "feedRecord".into()
            }
        );
        let all = br#"{"method": "getAllDomains", "parameters": {"include_disabled": true}}"#;
        assert_eq!(Query::from_json(all).unwrap(), Query::GetAllDomains);
    }

    #[test]
    fn dnssec_calls_decode_in_the_json_modes() {
        let content = "Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\nPrivateKey: x\n";
        let add = serde_json::json!({"method": "addDomainKey", "parameters": {"name": "example.com.",
            "key": {"flags": 257, "active": true, "published": true, "content": content}}});
        assert_eq!(
            Query::from_json(add.to_string().as_bytes()).unwrap(),
            Query::AddDomainKey {
                name: "example.com.".into(),
                key: NewZoneKey {
                    flags: 257,
                    active: true,
                    published: true,
                    content: content.into()
                }
            }
        );
        // pdns's REST form fields, nested by http.rs: numbers and flags as strings.
        let rest = serde_json::json!({"name": "example.com.",
            "key": {"flags": "256", "active": "0", "published": "1", "content": content}});
        let Query::AddDomainKey { key, .. } = Query::from_method("addDomainKey", &rest).unwrap()
        else {
            panic!("an addDomainKey");
        };
        assert_eq!((key.flags, key.active, key.published), (256, false, true));
        for (flags, bad_content) in [(385, content), (257, "hello"), (257, &"P".repeat(9000))] {
            let add = serde_json::json!({"name": "example.com.",
                "key": {"flags": flags, "active": true, "content": bad_content}});
            assert!(Query::from_method("addDomainKey", &add).is_err(), "{flags}");
        }
        let remove =
            br#"{"method": "removeDomainKey", "parameters": {"name": "example.com.", "id": 3}}"#;
        assert_eq!(
            Query::from_json(remove).unwrap(),
            Query::ChangeDomainKey {
                name: "example.com.".into(),
                id: 3,
                change: KeyChange::Remove
            }
        );
        let activate = serde_json::json!({"id": "4", "name": "example.com."});
        let decoded = Query::from_method("deactivateDomainKey", &activate).unwrap();
        assert_eq!(METHOD_NAMES[decoded.method_index()], "deactivateDomainKey");
        let set = br#"{"method": "setDomainMetadata", "parameters": {"name": "example.com.", "kind": "NSEC3PARAM", "value": ["1 0 0 -"]}}"#;
        assert_eq!(
            Query::from_json(set).unwrap(),
            Query::SetDomainMetadata {
                name: "example.com.".into(),
                kind: "NSEC3PARAM".into(),
                values: vec!["1 0 0 -".into()]
            }
        );
        let too_many = serde_json::json!({"name": "example.com.", "kind": "X",
            "value": vec!["v"; MAX_METADATA_VALUES + 1]});
        assert!(Query::from_method("setDomainMetadata", &too_many).is_err());
        let start = br#"{"method": "startTransaction", "parameters": {"domain": "example.com.", "domain_id": -1, "trxid": 1700000000}}"#;
        assert_eq!(
            Query::from_json(start).unwrap(),
            Query::StartTransaction { domain_id: -1 }
        );
        let api = br#"{"method": "APILookup", "parameters": {"qname": "a.example.com.", "qtype": "ANY", "zone-id": 1, "include-disabled": false}}"#;
        let decoded = Query::from_json(api).unwrap();
        assert_eq!(
            decoded.lookup_name(),
            Some("a.example.com."),
            "an alias of lookup"
        );
        for method in ["setTSIGKey", "deleteTSIGKey"] {
            let request = serde_json::json!({"method": method, "parameters": {"name": "k."}});
            assert_eq!(
                Query::from_json(request.to_string().as_bytes()).unwrap(),
                Query::ChangeTsigKey
            );
        }
        for (index, name) in METHOD_NAMES.iter().enumerate() {
            assert!(index == METHOD_NAMES.len() - 1 || is_known(name), "{name}");
        }
    }

    #[test]
    fn malformed_requests_are_decode_errors() {
        assert!(matches!(
            Query::from_json(b"not json"),
            Err(DecodeError::Envelope(_))
        ));
        assert!(matches!(
            Query::from_json(b"[1,2]"),
            Err(DecodeError::Envelope(_))
        ));
        assert!(matches!(
            Query::from_json(br#"{"method": 5}"#),
            Err(DecodeError::Envelope(_))
        ));
        assert!(matches!(
            Query::from_json(br#"{"method": "lookup", "parameters": {"qname": 5}}"#),
            Err(DecodeError::Parameter {
                parameter: "qname",
                ..
            })
        ));
        assert!(matches!(
            Query::from_json(br#"{"method": "lookup"}"#),
            Err(DecodeError::Parameter { .. })
        ));
    }

    #[test]
    fn integers_come_as_numbers_strings_or_whole_floats() {
        assert_eq!(integer(&serde_json::json!(7)), Some(7));
        assert_eq!(integer(&serde_json::json!("-1")), Some(-1));
        assert_eq!(
            integer(&serde_json::json!("2024010102.000000")),
            Some(2_024_010_102)
        );
        assert_eq!(integer(&serde_json::json!(2.5)), None);
        assert_eq!(integer(&serde_json::json!("x")), None);
        assert_eq!(integer(&serde_json::json!(null)), None);
    }
}
