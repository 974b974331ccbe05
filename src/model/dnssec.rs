//! DNSSEC keys as pdns keeps them: BIND's `Private-key-format: v1.2` text, from which the
//! DNSKEY and the DS for the parent follow. pdns signs with the private key (live, for every
//! answer); this module only makes keys (`zone secure`) and shows their public side
//! (`zone ds`), so that an operator never needs `pdnsutil` for the usual steps.
//!
//! Key making and the encodings are the crates' work: `p256` and `ring` turn a random secret
//! into its public key, `hickory-proto` computes key tags and DS digests (RFC 4034).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKeyBuf};
use hickory_proto::rr::Name;

/// The flags of a key signing key (or a combined signing key): the one the parent's DS names.
pub const KSK_FLAGS: u16 = 257;
/// The flags of a zone signing key.
pub const ZSK_FLAGS: u16 = 256;

/// The algorithms `zone secure` makes keys for: the two that RFC 8624 recommends for signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// ECDSA P-256 with SHA-256 (algorithm 13): pdns's default, validated everywhere.
    EcdsaP256Sha256,
    /// Ed25519 (algorithm 15): smaller signatures, validated by every current resolver.
    Ed25519,
}

impl std::str::FromStr for SigningAlgorithm {
    type Err = String;

    /// pdns's shorthands, in any case: `ecdsap256sha256` (or `ecdsa256`, `13`), `ed25519` (`15`).
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "ecdsap256sha256" | "ecdsa256" | "13" => Ok(Self::EcdsaP256Sha256),
            "ed25519" | "15" => Ok(Self::Ed25519),
            _ => Err(format!(
                "unknown algorithm {text:?}: use ecdsap256sha256 or ed25519"
            )),
        }
    }
}

impl SigningAlgorithm {
    /// The DNSSEC algorithm number (IANA).
    pub fn number(self) -> u8 {
        match self {
            Self::EcdsaP256Sha256 => 13,
            Self::Ed25519 => 15,
        }
    }

    /// The mnemonic, as BIND writes it after the number.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Self::Ed25519 => "ED25519",
        }
    }

    /// A new private key of this algorithm, as BIND's text (what pdns's `addDomainKey` takes).
    pub fn generate(self) -> String {
        let secret: [u8; 32] = loop {
            let candidate: [u8; 32] = rand::random();
            // A P-256 scalar must be below the group order (all but 2^-32 of them are).
            if self == Self::Ed25519 || p256::SecretKey::from_slice(&candidate).is_ok() {
                break candidate;
            }
        };
        format!(
            "Private-key-format: v1.2\nAlgorithm: {} ({})\nPrivateKey: {}\n",
            self.number(),
            self.mnemonic(),
            STANDARD.encode(secret)
        )
    }
}

/// Why a stored private key has no public side here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not BIND's private-key text, or a field missing or not base64.
    #[error("not a BIND private key: {0}")]
    Format(&'static str),
    /// An algorithm this build cannot derive a public key for.
    #[error("algorithm {0} is not supported here (13, 15, 8 and 10 are); use pdnsutil for it")]
    Algorithm(u8),
    /// The secret is not a valid key of its algorithm.
    #[error("the private key is not a valid key of algorithm {0}")]
    Invalid(u8),
}

/// A key's public side: what the zone publishes and the parent points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// 257 (KSK/CSK) or 256 (ZSK).
    pub flags: u16,
    /// The algorithm number.
    pub algorithm: u8,
    /// The public key in DNSKEY form (RFC 6605, RFC 8080, RFC 3110).
    pub key: Vec<u8>,
}

impl PublicKey {
    /// The public side of the private key `content` (BIND's text) with `flags`.
    pub fn from_private(flags: u16, content: &str) -> Result<Self, KeyError> {
        let field = |name: &str| {
            content.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim())
            })
        };
        let decode = |name: &'static str| {
            let value = field(name).ok_or(KeyError::Format(name))?;
            STANDARD.decode(value).map_err(|_| KeyError::Format(name))
        };
        if !content.starts_with("Private-key-format:") {
            return Err(KeyError::Format("Private-key-format"));
        }
        let algorithm = field("Algorithm")
            .and_then(|value| value.split_whitespace().next())
            .and_then(|number| number.parse::<u8>().ok())
            .ok_or(KeyError::Format("Algorithm"))?;
        let key = match algorithm {
            13 => {
                use p256::elliptic_curve::sec1::ToSec1Point as _;
                let secret = p256::SecretKey::from_slice(&decode("PrivateKey")?)
                    .map_err(|_| KeyError::Invalid(algorithm))?;
                let point = secret.public_key().to_sec1_point(false);
                // The uncompressed point without its 0x04 prefix: X and Y (RFC 6605 §4).
                point.as_bytes()[1..].to_vec()
            }
            15 => {
                let seed = decode("PrivateKey")?;
                let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
                    .map_err(|_| KeyError::Invalid(algorithm))?;
                ring::signature::KeyPair::public_key(&pair)
                    .as_ref()
                    .to_vec()
            }
            8 | 10 => {
                // RFC 3110 §2: exponent length, exponent, modulus.
                let exponent = decode("PublicExponent")?;
                let modulus = decode("Modulus")?;
                let mut key = Vec::with_capacity(3 + exponent.len() + modulus.len());
                match u8::try_from(exponent.len()) {
                    Ok(length) if length > 0 => key.push(length),
                    _ => {
                        key.push(0);
                        let length = u16::try_from(exponent.len())
                            .map_err(|_| KeyError::Invalid(algorithm))?;
                        key.extend_from_slice(&length.to_be_bytes());
                    }
                }
                key.extend_from_slice(&exponent);
                key.extend_from_slice(&modulus);
                key
            }
            other => return Err(KeyError::Algorithm(other)),
        };
        Ok(Self {
            flags,
            algorithm,
            key,
        })
    }

    /// As hickory's DNSKEY.
    fn dnskey(&self) -> DNSKEY {
        DNSKEY::with_flags(
            self.flags,
            PublicKeyBuf::new(self.key.clone(), Algorithm::from_u8(self.algorithm)),
        )
    }

    /// The key tag (RFC 4034 Appendix B) that RRSIGs and DS records name.
    pub fn key_tag(&self) -> u16 {
        DNSKEY::calculate_key_tag_internal(&self.rdata())
    }

    /// The DNSKEY RDATA on the wire.
    fn rdata(&self) -> Vec<u8> {
        let mut rdata = Vec::with_capacity(4 + self.key.len());
        rdata.extend_from_slice(&self.flags.to_be_bytes());
        rdata.push(3);
        rdata.push(self.algorithm);
        rdata.extend_from_slice(&self.key);
        rdata
    }

    /// The DNSKEY record's data in zone-file form: `257 3 13 base64`.
    pub fn dnskey_text(&self) -> String {
        format!(
            "{} 3 {} {}",
            self.flags,
            self.algorithm,
            STANDARD.encode(&self.key)
        )
    }

    /// The DS record's data for `zone` with digest type 2 (SHA-256, what registries take) or
    /// 4 (SHA-384), in zone-file form: `tag algorithm digest-type HEX`.
    pub fn ds_text(&self, zone: &str, digest_type: u8) -> Result<String, KeyError> {
        let digest_kind = match digest_type {
            2 => DigestType::SHA256,
            4 => DigestType::SHA384,
            _ => return Err(KeyError::Format("digest type")),
        };
        let name = Name::from_ascii(format!("{}.", zone.trim_end_matches('.')))
            .map_err(|_| KeyError::Format("zone name"))?;
        let digest = self
            .dnskey()
            .to_digest(&name, digest_kind)
            .map_err(|_| KeyError::Invalid(self.algorithm))?;
        let hex: String = digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect();
        Ok(format!(
            "{} {} {digest_type} {hex}",
            self.key_tag(),
            self.algorithm
        ))
    }
}

/// A zone's DNSSEC key as stored and as pdns's `getDomainKeys` hands it out. Its `Debug`
/// never shows the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct ZoneKey {
    /// Its id (pdns names keys by it: `pdnsutil activate-zone-key ZONE ID`).
    pub id: i64,
    /// [`KSK_FLAGS`] or [`ZSK_FLAGS`].
    pub flags: u16,
    /// Whether pdns signs with it.
    pub active: bool,
    /// Whether its DNSKEY is served.
    pub published: bool,
    /// The private key, BIND's text.
    pub content: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// A key to add: what pdns's `addDomainKey` sends, or what `zone secure` makes. Its `Debug`
/// never shows the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct NewZoneKey {
    /// [`KSK_FLAGS`] or [`ZSK_FLAGS`].
    pub flags: u16,
    /// Whether pdns signs with it.
    pub active: bool,
    /// Whether its DNSKEY is served.
    pub published: bool,
    /// The private key, BIND's text.
    pub content: String,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey")
            .field("id", &self.id)
            .field("flags", &self.flags)
            .field("active", &self.active)
            .field("published", &self.published)
            .field("content", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewZoneKey")
            .field("flags", &self.flags)
            .field("active", &self.active)
            .field("published", &self.published)
            .field("content", &"<redacted>")
            .finish()
    }
}

/// Which state of a key a pdns call changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// `activateDomainKey` / `deactivateDomainKey`.
    Active(bool),
    /// `publishDomainKey` / `unpublishDomainKey`.
    Published(bool),
}

/// A zone's pdns metadata: each kind's values, in order.
pub type Metadata = std::collections::BTreeMap<String, Vec<String>>;

/// The most values one metadata kind holds.
pub const MAX_METADATA_VALUES: usize = 64;

/// The metadata kinds derived from the zone's own settings (`zone set --also-notify`), never
/// stored as metadata: pdns cannot set them through the backend.
pub const DERIVED_METADATA: [&str; 2] = ["ALSO-NOTIFY", "ALLOW-AXFR-FROM"];

/// Why a metadata kind cannot be set through pdns (`setDomainMetadata`): `None` when it can.
pub fn metadata_refusal(kind: &str) -> Option<&'static str> {
    if DERIVED_METADATA
        .iter()
        .any(|derived| derived.eq_ignore_ascii_case(kind))
    {
        return Some("follows the zone's secondaries: use `certadns-ddns zone set --also-notify`");
    }
    if kind.eq_ignore_ascii_case("PRESIGNED") {
        // pdns would then serve RRSIGs from the backend, which holds none: every signed
        // answer would break.
        return Some("this backend keeps no signatures: pdns signs live");
    }
    None
}

/// The names of a zone in canonical DNS order (RFC 4034 §6.1), for NSEC denial: every name that
/// holds records (delegation points included), and nothing below a delegation (glue is not
/// authoritative). Empty non-terminals own no NSEC (RFC 4035 §2.3: an NSEC is never the only
/// RRset at a name); the NSEC before one covers it, as pdns's own rectify leaves them. pdns asks
/// for the neighbours of a name (`getBeforeAndAfterNamesAbsolute`) and makes the NSEC record
/// between them.
///
/// Each name is kept as its labels from the right, lower case, joined by NUL bytes, relative to
/// the apex (the apex itself is empty): byte order is then canonical order, as in pdns's own
/// `ordername`.
#[derive(Debug, Clone, Default)]
pub struct NsecChain {
    keys: std::collections::BTreeSet<Box<[u8]>>,
}

impl NsecChain {
    /// The chain of zone `apex` (normalised) over `names`, each with whether it holds NS
    /// records (a delegation, below the apex).
    pub fn build<'a>(apex: &str, names: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let names: Vec<(&str, bool)> = names.into_iter().collect();
        let cuts: std::collections::HashSet<&str> = names
            .iter()
            .filter(|(name, ns)| *ns && *name != apex)
            .map(|(name, _)| *name)
            .collect();
        let mut chain = Self::default();
        chain.keys.insert(Box::default());
        for (name, _) in names {
            if !super::names_between(name, apex).any(|parent| cuts.contains(parent)) {
                chain.insert(apex, name);
            }
        }
        chain
    }

    /// Adds `name` (in zone `apex`, holding records, not below a delegation).
    pub fn insert(&mut self, apex: &str, name: &str) {
        if let Some(key) = canonical_key(name, apex) {
            self.keys.insert(key);
        }
    }

    /// Forgets `name` (in zone `apex`), which no longer exists.
    pub fn remove(&mut self, apex: &str, name: &str) {
        if let Some(key) = canonical_key(name, apex).filter(|key| !key.is_empty()) {
            self.keys.remove(&key);
        }
    }

    /// The names before (or at) and after `name` in zone `apex`, wrapping around at the ends,
    /// as names relative to the apex (`""` for the apex itself).
    pub fn neighbours(&self, apex: &str, name: &str) -> (String, String) {
        let key = canonical_key(name, apex).unwrap_or_default();
        use std::ops::Bound::{Excluded, Unbounded};
        let before = self
            .keys
            .range::<[u8], _>((Unbounded, std::ops::Bound::Included(&*key)))
            .next_back()
            .or_else(|| self.keys.last());
        let after = self
            .keys
            .range::<[u8], _>((Excluded(&*key), Unbounded))
            .next()
            .or_else(|| self.keys.first());
        let relative =
            |key: Option<&Box<[u8]>>| key.map(|key| relative_name(key)).unwrap_or_default();
        (relative(before), relative(after))
    }

    /// How many names the chain holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the chain is empty (never, once built: the apex is in it).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// `name`'s key in [`NsecChain`]: its labels below `apex`, from the right, joined by NULs.
fn canonical_key(name: &str, apex: &str) -> Option<Box<[u8]>> {
    if name == apex {
        return Some(Box::default());
    }
    let relative = name.strip_suffix(apex)?.strip_suffix('.')?;
    let labels: Vec<&str> = relative.rsplit('.').collect();
    Some(
        labels
            .join("\0")
            .to_ascii_lowercase()
            .into_bytes()
            .into_boxed_slice(),
    )
}

/// The relative name (`b.a`) of a key of [`NsecChain`].
fn relative_name(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    let labels: Vec<&str> = text.split('\0').collect();
    labels.into_iter().rev().collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn generated_keys_have_public_sides_and_stable_tags() {
        for algorithm in [SigningAlgorithm::EcdsaP256Sha256, SigningAlgorithm::Ed25519] {
            let content = algorithm.generate();
            assert!(content.starts_with("Private-key-format: v1.2\n"));
            let public = PublicKey::from_private(KSK_FLAGS, &content).unwrap();
            let expected = if algorithm == SigningAlgorithm::Ed25519 {
                32
            } else {
                64
            };
            assert_eq!(public.key.len(), expected);
            assert_eq!(public.algorithm, algorithm.number());
            assert_eq!(
                public.key_tag(),
                public.dnskey().calculate_key_tag().unwrap(),
                "hickory's own tag over its own encoding"
            );
            let ds = public.ds_text("example.com", 2).unwrap();
            assert!(ds.starts_with(&format!("{} {} 2 ", public.key_tag(), algorithm.number())));
            assert_eq!(ds.len() - ds.rfind(' ').unwrap() - 1, 64, "{ds}");
        }
    }

    #[test]
    fn a_known_key_gives_the_known_dnskey_and_ds() {
        // RFC 6605 §6.1's example key, as BIND writes it.
        let content = "Private-key-format: v1.2\nAlgorithm: 13 (ECDSAP256SHA256)\n\
                       PrivateKey: GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=\n";
        let public = PublicKey::from_private(KSK_FLAGS, content).unwrap();
        assert_eq!(
            public.dnskey_text(),
            "257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA=="
        );
        assert_eq!(public.key_tag(), 55648);
        assert_eq!(
            public.ds_text("example.net", 2).unwrap(),
            "55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
    }

    #[test]
    fn broken_keys_are_refused_by_name() {
        assert_eq!(
            PublicKey::from_private(256, "hello"),
            Err(KeyError::Format("Private-key-format"))
        );
        assert_eq!(
            PublicKey::from_private(256, "Private-key-format: v1.2\nAlgorithm: 13\n"),
            Err(KeyError::Format("PrivateKey"))
        );
        assert_eq!(
            PublicKey::from_private(256, "Private-key-format: v1.2\nAlgorithm: 3 (DSA)\n"),
            Err(KeyError::Algorithm(3))
        );
        let zero = format!(
            "Private-key-format: v1.2\nAlgorithm: 13\nPrivateKey: {}\n",
            STANDARD.encode([0u8; 32])
        );
        assert_eq!(
            PublicKey::from_private(256, &zero),
            Err(KeyError::Invalid(13))
        );
    }

    #[test]
    fn the_nsec_chain_is_in_canonical_order_with_ents_and_without_glue() {
        let apex = "example.com";
        let names = [
            ("example.com", true),
            ("a.example.com", false),
            ("z.example.com", false),
            ("zz.x.example.com", false),
            ("yljkjljk.a.example.com", false),
            ("*.z.example.com", false),
            ("sub.example.com", true),
            ("ns.sub.example.com", false),
            ("_acme-challenge.a.example.com", false),
        ];
        let chain = NsecChain::build(apex, names);
        // Following `after` from the apex walks the chain once round: RFC 4034 §6.1's order,
        // x (an empty non-terminal) and ns.sub (glue) left out.
        let mut order = Vec::new();
        let mut name = apex.to_string();
        for _ in 0..chain.len() {
            let (_, after) = chain.neighbours(apex, &name);
            name = if after.is_empty() {
                apex.to_string()
            } else {
                format!("{after}.{apex}")
            };
            order.push(after);
        }
        assert_eq!(
            order,
            [
                "a",
                "_acme-challenge.a",
                "yljkjljk.a",
                "sub",
                "zz.x",
                "z",
                "*.z",
                ""
            ]
        );
        assert_eq!(
            chain.neighbours(apex, "b.example.com"),
            ("yljkjljk.a".into(), "sub".into()),
            "after a's subtree"
        );
        assert_eq!(
            chain.neighbours(apex, "zzz.example.com"),
            ("*.z".into(), String::new()),
            "wraps to the apex"
        );
        assert_eq!(
            chain.neighbours(apex, "a.example.com"),
            ("a".into(), "_acme-challenge.a".into()),
            "an existing name is its own `before`"
        );
        let mut chain = chain;
        chain.remove(apex, "yljkjljk.a.example.com");
        assert_eq!(
            chain.neighbours(apex, "yljkjljk.a.example.com"),
            ("_acme-challenge.a".into(), "sub".into())
        );
        chain.insert(apex, "q.p.example.com");
        assert_eq!(
            chain.neighbours(apex, "p0.example.com"),
            ("q.p".into(), "sub".into()),
            "p is not in the chain, q.p is"
        );
        assert_eq!(
            chain.neighbours(apex, "x.example.com"),
            ("sub".into(), "zz.x".into()),
            "the empty non-terminal x is covered"
        );
    }
}
