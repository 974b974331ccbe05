//! MaxMind-format databases (MMDB), read with the `maxminddb` crate: the country and the AS
//! number of an address, from whichever of the common layouts the file has.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use maxminddb::{MaxMindDbError, PathElement, Reader};

use crate::model::CountryCode;

/// `country.iso_code`: GeoLite2/GeoIP2 Country and City, DB-IP Lite.
const COUNTRY_ISO_CODE: &[PathElement<'static>] =
    &[PathElement::Key("country"), PathElement::Key("iso_code")];
/// `country_code`: IPinfo Lite and other flat layouts.
const COUNTRY_CODE: &[PathElement<'static>] = &[PathElement::Key("country_code")];
/// `autonomous_system_number`: GeoLite2/GeoIP2 ASN.
const ASN_NUMBER: &[PathElement<'static>] = &[PathElement::Key("autonomous_system_number")];
/// `asn`: IPinfo Lite (`"AS15169"`) and other flat layouts.
const ASN: &[PathElement<'static>] = &[PathElement::Key("asn")];

/// One database, held in memory (a copy, so a file replaced or truncated under the service
/// never changes what a lookup reads).
pub(super) struct Mmdb {
    /// The reader over the file's bytes.
    reader: Reader<Vec<u8>>,
    /// Set after the first failed lookup has been logged: a damaged file logs once, not once
    /// per update.
    failed: AtomicBool,
}

impl Mmdb {
    /// Reads a database from its bytes; checks its metadata, not every record (that takes about
    /// a second for a city database), so a damaged record shows at its lookup.
    pub(super) fn from_bytes(bytes: Vec<u8>) -> Result<Self, MaxMindDbError> {
        Ok(Self {
            reader: Reader::from_source(bytes)?,
            failed: AtomicBool::new(false),
        })
    }

    /// What the file is, for the log: its type and build date.
    pub(super) fn describe(&self) -> String {
        let metadata = self.reader.metadata();
        let built = i64::try_from(metadata.build_epoch)
            .ok()
            .and_then(|epoch| time::OffsetDateTime::from_unix_timestamp(epoch).ok())
            .map_or_else(|| "an unknown date".into(), |time| time.date().to_string());
        format!("{}, built {built}", metadata.database_type)
    }

    /// The country of `ip`, if the database places it.
    pub(super) fn country(&self, ip: IpAddr) -> Option<CountryCode> {
        let found = self.reader.lookup(ip).and_then(|result| {
            first_found(&[
                &|| result.decode_path::<&str>(COUNTRY_ISO_CODE),
                // IPinfo Lite: `country` is the name, `country_code` the code.
                &|| result.decode_path::<&str>(COUNTRY_CODE),
            ])
        });
        self.checked(found).flatten().and_then(CountryCode::parse)
    }

    /// The number of the autonomous system announcing `ip`, if the database knows it.
    pub(super) fn asn(&self, ip: IpAddr) -> Option<u32> {
        let found = self.reader.lookup(ip).and_then(|result| {
            first_found(&[
                &|| result.decode_path::<u32>(ASN_NUMBER),
                // `"AS15169"` in IPinfo's layout; a plain number elsewhere.
                &|| {
                    let text = result.decode_path::<&str>(ASN)?;
                    Ok(text.and_then(|text| text.strip_prefix("AS").unwrap_or(text).parse().ok()))
                },
                &|| result.decode_path::<u32>(ASN),
            ])
        });
        self.checked(found).flatten()
    }

    /// The value of a lookup; a failure (a damaged file) is no value, logged the first time.
    fn checked<T>(&self, found: Result<T, MaxMindDbError>) -> Option<T> {
        match found {
            Ok(value) => Some(value),
            Err(error) => {
                if !self.failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        "a lookup in an audit database failed: the file may be damaged \
                         (logged once per file loaded); those addresses get no value"
                    );
                }
                None
            }
        }
    }
}

/// A read of one layout: the value, none (the field is missing), or an error (the field is of
/// another type, or the record is damaged).
type Read<'a, T> = &'a dyn Fn() -> Result<Option<T>, MaxMindDbError>;

/// The value of the first of `reads` that finds one. A layout that does not fit the record (its
/// field missing, or of another type, as `country` is a name in IPinfo's layout and a map in
/// MaxMind's) gives way to the next; an error comes out only when every read failed.
fn first_found<T>(reads: &[Read<'_, T>]) -> Result<Option<T>, MaxMindDbError> {
    let mut fitted = false;
    let mut failure = None;
    for read in reads {
        match read() {
            Ok(Some(value)) => return Ok(Some(value)),
            Ok(None) => fitted = true,
            Err(error) => failure = Some(error),
        }
    }
    match failure {
        Some(error) if !fitted => Err(error),
        _ => Ok(None),
    }
}

#[cfg(test)]
pub(super) mod test {
    use std::collections::BTreeMap;

    use ipnet::IpNet;
    use mmdb_writer::Writer;
    use serde::Serialize;

    use super::*;

    /// Builds a database of `database_type` with `records` (network → any serialisable value).
    pub(crate) fn database<T: Serialize>(database_type: &str, records: &[(&str, T)]) -> Vec<u8> {
        let mut writer = Writer::builder(database_type)
            .description(&[("en", "made by certadns-ddns's tests")])
            .build();
        for (network, value) in records {
            writer
                .insert(network.parse::<IpNet>().unwrap(), value)
                .unwrap();
        }
        writer.to_bytes().unwrap()
    }

    /// `{"country": {"iso_code": code}}`, as GeoLite2 has it.
    pub(crate) fn geolite_country(
        code: &str,
    ) -> BTreeMap<&'static str, BTreeMap<&'static str, String>> {
        BTreeMap::from([("country", BTreeMap::from([("iso_code", code.to_owned())]))])
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn countries_come_from_either_layout_and_only_as_codes() {
        let geolite = Mmdb::from_bytes(database(
            "GeoLite2-Country",
            &[
                ("81.2.69.0/24", geolite_country("GB")),
                ("2a02:2770::/32", geolite_country("nl")),
                ("89.160.20.0/24", geolite_country("not a code")),
            ],
        ))
        .unwrap();
        assert_eq!(
            geolite.describe().split(',').next(),
            Some("GeoLite2-Country")
        );
        assert_eq!(geolite.country(ip("81.2.69.160")).unwrap().as_str(), "GB");
        assert_eq!(geolite.country(ip("2a02:2770::1")).unwrap().as_str(), "NL");
        assert_eq!(geolite.country(ip("89.160.20.1")), None);
        assert_eq!(geolite.country(ip("8.8.8.8")), None, "not in the database");
        assert_eq!(geolite.asn(ip("81.2.69.160")), None, "no AS numbers here");

        // IPinfo Lite's layout: `country` is the name, the code is beside it.
        #[derive(Serialize)]
        struct Flat {
            country: &'static str,
            country_code: &'static str,
            asn: &'static str,
            as_name: &'static str,
        }
        let ipinfo = Mmdb::from_bytes(database(
            "ipinfo lite.mmdb",
            &[(
                "8.8.8.0/24",
                Flat {
                    country: "United States",
                    country_code: "US",
                    asn: "AS15169",
                    as_name: "Google LLC",
                },
            )],
        ))
        .unwrap();
        assert_eq!(ipinfo.country(ip("8.8.8.8")).unwrap().as_str(), "US");
        assert_eq!(ipinfo.asn(ip("8.8.8.8")), Some(15169));
    }

    #[test]
    fn as_numbers_come_from_either_layout() {
        #[derive(Serialize)]
        struct GeoLiteAsn {
            autonomous_system_number: u32,
            autonomous_system_organization: &'static str,
        }
        #[derive(Serialize)]
        struct Numeric {
            asn: u32,
        }
        let geolite = Mmdb::from_bytes(database(
            "GeoLite2-ASN",
            &[(
                "193.0.0.0/21",
                GeoLiteAsn {
                    autonomous_system_number: 3333,
                    autonomous_system_organization: "Reseaux IP Europeens Network Coordination Centre (RIPE NCC)",
                },
            )],
        ))
        .unwrap();
        assert_eq!(geolite.asn(ip("193.0.6.139")), Some(3333));
        assert_eq!(geolite.asn(ip("193.0.8.1")), None);
        assert_eq!(geolite.country(ip("193.0.6.139")), None);
        let numeric = Mmdb::from_bytes(database(
            "Numeric-ASN",
            &[("9.9.9.0/24", Numeric { asn: 19281 })],
        ))
        .unwrap();
        assert_eq!(numeric.asn(ip("9.9.9.9")), Some(19281));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        assert!(Mmdb::from_bytes(Vec::new()).is_err());
        assert!(Mmdb::from_bytes(b"192.0.2.0/24\n".to_vec()).is_err());
        let mut truncated = database(
            "GeoLite2-Country",
            &[("81.2.69.0/24", geolite_country("GB"))],
        );
        truncated.truncate(truncated.len() / 2);
        assert!(Mmdb::from_bytes(truncated).is_err());
    }

    #[test]
    fn a_damaged_record_is_no_value_and_is_reported() {
        // The end of the data section and search tree overwritten: with zeros the tree leads
        // nowhere (no value, nothing wrong to report); with other bytes the reads fail inside
        // maxminddb, which gives no value and sets the flag of the one warning, never a panic.
        let good = database(
            "GeoLite2-Country",
            &[("81.2.69.0/24", geolite_country("GB"))],
        );
        let intact = Mmdb::from_bytes(good.clone()).unwrap();
        assert_eq!(intact.country(ip("81.2.69.160")).unwrap().as_str(), "GB");
        assert!(!intact.failed.load(Ordering::Relaxed));
        let marker = b"\xab\xcd\xefMaxMind.com";
        let metadata = good
            .windows(marker.len())
            .rposition(|window| window == marker)
            .unwrap();
        for (fill, reported) in [(0x00_u8, false), (0xff, true), (0x5a, true)] {
            let mut damaged = good.clone();
            for byte in &mut damaged[metadata.saturating_sub(64)..metadata] {
                *byte = fill;
            }
            let db = Mmdb::from_bytes(damaged).expect("the metadata is intact");
            for _ in 0..3 {
                assert_eq!(db.country(ip("81.2.69.160")), None, "{fill:#x}");
                assert_eq!(db.asn(ip("81.2.69.160")), None, "{fill:#x}");
            }
            assert_eq!(db.failed.load(Ordering::Relaxed), reported, "{fill:#x}");
        }
    }
}
