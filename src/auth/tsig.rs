//! TSIG (RFC 8945): checking the signature of a DNS request against the key it names.
//!
//! `hickory-proto` reads the message and rebuilds the bytes the client signed (the message
//! without its TSIG record, the original ID back in the header, then the TSIG variables): the
//! part that is easy to get subtly wrong. The MAC itself is computed here with RustCrypto's
//! `hmac` over SHA-256, SHA-512 or SHA-1 (hickory's own HMAC leaves SHA-1 out, which old
//! clients still send) and compared in constant time (`subtle`).
//!
//! The checks run in RFC 8945 §5.2's order, each with its error: the key (BADKEY: unknown,
//! revoked, or another algorithm than the key's), the MAC (BADSIG; a truncated MAC is
//! BADTRUNC, this service takes full-length MACs only), then the time (BADTIME, outside the
//! request's fudge). A message with no TSIG is [`TsigError::Unsigned`], for the caller to
//! refuse or answer as it must.

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::dnssec::rdata::tsig::{
    TSIG, TsigAlgorithm as HickoryAlgorithm, make_tsig_record, message_tbs,
    signed_bitmessage_to_buf,
};
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq as _;

use crate::model::tsig::{TsigAlgorithm, TsigKey};
use crate::served::StoreError;

/// Why a signed request was not taken. [`TsigError::rcode`] is what the answer's TSIG record
/// carries (RFC 8945 §5.2).
#[derive(Debug, thiserror::Error)]
pub enum TsigError {
    /// The message carries no TSIG record.
    #[error("the request is not signed")]
    Unsigned,
    /// The message or its TSIG record cannot be read (FORMERR).
    #[error("malformed TSIG: {0}")]
    Malformed(String),
    /// No active key of that name, or the key is for another algorithm (BADKEY).
    #[error("unknown key {}", .0.key_name)]
    BadKey(Box<RequestTsig>),
    /// The MAC does not match (BADSIG).
    #[error("bad signature with key {}", .0.key_name)]
    BadSig(Box<RequestTsig>),
    /// Signed outside the fudge around this server's time (BADTIME). The signature itself
    /// checked out: the answer is signed ([`sign_response`]).
    #[error(
        "signed at {}, {skew} s away from this server's time (fudge {} s)",
        .verified.time_signed,
        .verified.fudge
    )]
    BadTime {
        /// The request, verified but for its time.
        verified: Box<Verified>,
        /// How far its time is from now, in seconds.
        skew: u64,
    },
    /// The MAC is truncated; only full-length MACs are taken (BADTRUNC).
    #[error("truncated MAC with key {}", .0.key_name)]
    BadTrunc(Box<RequestTsig>),
    /// The keys could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TsigError {
    /// The TSIG error code of the answer: BADSIG 16, BADKEY 17, BADTIME 18, BADTRUNC 22; 0
    /// for the others, which are answered with a plain RCODE (FORMERR, REFUSED, SERVFAIL).
    pub fn rcode(&self) -> u16 {
        match self {
            Self::BadSig(_) => 16,
            Self::BadKey(_) => 17,
            Self::BadTime { .. } => 18,
            Self::BadTrunc(_) => 22,
            Self::Unsigned | Self::Malformed(_) | Self::Store(_) => 0,
        }
    }
}

/// What a request's TSIG record said, for the unsigned answer to a signature that did not
/// check out ([`unsigned_error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTsig {
    /// The key's name (lower case, no final dot).
    pub key_name: String,
    /// The algorithm's name, as the request spelled it.
    pub algorithm: String,
    /// The request's fudge.
    pub fudge: u16,
}

/// A request whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The key that signed it.
    pub key: TsigKey,
    /// The request's MAC: the answer's signature covers it (RFC 8945 §4.3.1).
    pub mac: Vec<u8>,
    /// When the client signed, in seconds since the epoch.
    pub time_signed: u64,
    /// The request's fudge, which the answer carries back.
    pub fudge: u16,
}

/// The HMAC of `data` under `secret` with `algorithm`: as long as the hash's output.
fn hmac(algorithm: TsigAlgorithm, secret: &[u8], data: &[u8]) -> Vec<u8> {
    fn keyed<M: Mac + KeyInit>(secret: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac =
            <M as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        TsigAlgorithm::HmacSha256 => keyed::<hmac::Hmac<sha2::Sha256>>(secret, data),
        TsigAlgorithm::HmacSha512 => keyed::<hmac::Hmac<sha2::Sha512>>(secret, data),
        TsigAlgorithm::HmacSha1 => keyed::<hmac::Hmac<sha1::Sha1>>(secret, data),
    }
}

/// Checks the TSIG of `message` at `now` (seconds since the epoch), finding the key it names
/// with `find` (by name, lower case, no final dot; only active keys).
pub fn verify(
    message: &[u8],
    now: u64,
    find: impl FnOnce(&str) -> Result<Option<TsigKey>, StoreError>,
) -> Result<Verified, TsigError> {
    // Read whole first: a message whose last additional record is not a TSIG is unsigned.
    let read =
        Message::from_vec(message).map_err(|error| TsigError::Malformed(error.to_string()))?;
    if read
        .signature()
        .last()
        .is_none_or(|record| record.record_type() != RecordType::TSIG)
    {
        return Err(TsigError::Unsigned);
    }
    let (signed, record) = signed_bitmessage_to_buf(None, message, true)
        .map_err(|error| TsigError::Malformed(error.to_string()))?;
    let RData::DNSSEC(DNSSECRData::TSIG(tsig)) = record.data() else {
        return Err(TsigError::Unsigned);
    };
    let name = crate::model::normalize_name(&record.name().to_ascii());
    let algorithm = tsig.algorithm().to_name().to_ascii();
    let request = || {
        Box::new(RequestTsig {
            key_name: name.clone(),
            algorithm: algorithm.clone(),
            fudge: tsig.fudge(),
        })
    };
    let Some(key) = find(&name)? else {
        return Err(TsigError::BadKey(request()));
    };
    if algorithm.parse::<TsigAlgorithm>().ok() != Some(key.algorithm) {
        return Err(TsigError::BadKey(request()));
    }
    let expected = key.algorithm.secret_len();
    let mac = tsig.mac();
    if mac.len() > expected {
        return Err(TsigError::Malformed(format!(
            "a MAC of {} bytes for {}",
            mac.len(),
            key.algorithm
        )));
    }
    if mac.len() < expected {
        // RFC 8945 §5.2.2.1: shorter than half the hash (or 10 bytes) is malformed; between
        // that and the full length is a truncation this service does not accept.
        return Err(if mac.len() < expected.div_ceil(2).max(10) {
            TsigError::Malformed(format!("a MAC of {} bytes", mac.len()))
        } else {
            TsigError::BadTrunc(request())
        });
    }
    let secret = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &key.secret)
        .map_err(|_| TsigError::BadKey(request()))?;
    if !bool::from(hmac(key.algorithm, &secret, &signed).ct_eq(mac)) {
        return Err(TsigError::BadSig(request()));
    }
    let verified = Verified {
        key,
        mac: mac.to_vec(),
        time_signed: tsig.time(),
        fudge: tsig.fudge(),
    };
    let skew = now.abs_diff(tsig.time());
    if skew > u64::from(tsig.fudge()) {
        return Err(TsigError::BadTime {
            verified: Box::new(verified),
            skew,
        });
    }
    Ok(verified)
}

/// Bytes already encoded, emitted as they are.
struct Wire(Vec<u8>);

impl hickory_proto::serialize::binary::BinEncodable for Wire {
    fn emit(
        &self,
        encoder: &mut hickory_proto::serialize::binary::BinEncoder<'_>,
    ) -> Result<(), hickory_proto::ProtoError> {
        encoder.emit_vec(&self.0)
    }
}

/// Signs `response`, the answer to the request `verified` came from, at `now` (seconds since
/// the epoch), as RFC 8945 §4.3 and §5.3 say: the MAC covers the request's MAC, the answer
/// (with the request's ID, without its TSIG record) and the TSIG variables. With `badtime`,
/// the answer to a request signed outside the fudge (§5.2.3): it carries the error BADTIME,
/// the request's time, and this server's time in its other data, so that the client can tell
/// its clock is off. Answers to BADKEY and BADSIG are not signed (there is no key to sign
/// with): the caller sends those as they are.
pub fn sign_response(
    response: &mut Message,
    verified: &Verified,
    now: u64,
    badtime: bool,
) -> Result<(), TsigError> {
    let malformed = |error: hickory_proto::ProtoError| TsigError::Malformed(error.to_string());
    let key_name = Name::from_ascii(format!("{}.", verified.key.name)).map_err(malformed)?;
    let algorithm = HickoryAlgorithm::from_name(
        Name::from_ascii(format!("{}.", verified.key.algorithm)).map_err(malformed)?,
    );
    let (time, error, other) = if badtime {
        // 48 bits of this server's time.
        let other = now.to_be_bytes()[2..].to_vec();
        (verified.time_signed, 18, other)
    } else {
        (now, 0, Vec::new())
    };
    let pre = TSIG::new(
        algorithm,
        time,
        verified.fudge,
        Vec::new(),
        response.id(),
        error,
        other,
    );
    // The answer as it goes on the wire, encoded on its own: encoded after the request's MAC
    // (as `message_tbs` would encode a `Message`), its compressed names would point 34 or
    // more bytes off, and the MAC would cover other bytes than the client reads.
    let wire = Wire(response.to_vec().map_err(malformed)?);
    let signed = message_tbs(Some(&verified.mac), &wire, &pre, &key_name).map_err(malformed)?;
    let secret = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &verified.key.secret,
    )
    .map_err(|_| {
        TsigError::BadKey(Box::new(RequestTsig {
            key_name: verified.key.name.clone(),
            algorithm: verified.key.algorithm.to_string(),
            fudge: verified.fudge,
        }))
    })?;
    let mac = hmac(verified.key.algorithm, &secret, &signed);
    response.add_tsig(make_tsig_record(key_name, pre.set_mac(mac)));
    Ok(())
}

/// Adds to `response` the TSIG record of an answer to a request whose signature did not check
/// out (BADKEY, BADSIG, BADTRUNC: `error`'s code), as RFC 8945 §5.3.2 says: unsigned, with
/// the request's key name and algorithm, this server's time at `now`, an empty MAC and the
/// error, so that the client learns why without anything signed for it.
pub fn unsigned_error(
    response: &mut Message,
    error: &TsigError,
    now: u64,
) -> Result<(), TsigError> {
    let (TsigError::BadKey(request) | TsigError::BadSig(request) | TsigError::BadTrunc(request)) =
        error
    else {
        return Ok(());
    };
    let malformed = |error: hickory_proto::ProtoError| TsigError::Malformed(error.to_string());
    let key_name = Name::from_ascii(format!("{}.", request.key_name)).map_err(malformed)?;
    let algorithm = HickoryAlgorithm::from_name(
        Name::from_ascii(format!("{}.", request.algorithm.trim_end_matches('.')))
            .map_err(malformed)?,
    );
    let tsig = TSIG::new(
        algorithm,
        now,
        request.fudge,
        Vec::new(),
        response.id(),
        error.rcode(),
        Vec::new(),
    );
    response.add_tsig(make_tsig_record(key_name, tsig));
    Ok(())
}

/// Signs the messages of an answer that takes many (a zone transfer), as RFC 8945 §5.3.1 says:
/// the first as any answer ([`sign_response`]); each next one over the MAC before it, the
/// message, and only the TSIG timers, so that a secondary can tell none was left out or
/// reordered. Every message is signed (the RFC allows gaps of up to 99; none is simpler for
/// every client).
#[derive(Debug)]
pub struct StreamSigner {
    verified: Verified,
    /// The MAC of the message before; `None` before the first.
    prior: Option<Vec<u8>>,
}

impl StreamSigner {
    /// Signs the answer to the request `verified` came from.
    pub fn new(verified: Verified) -> Self {
        Self {
            verified,
            prior: None,
        }
    }

    /// Signs `response`, the next message of the answer, at `now` (seconds since the epoch).
    pub fn sign(&mut self, response: &mut Message, now: u64) -> Result<(), TsigError> {
        let Some(prior) = &self.prior else {
            sign_response(response, &self.verified, now, false)?;
            self.prior = response.signature().last().and_then(|record| {
                let RData::DNSSEC(DNSSECRData::TSIG(tsig)) = record.data() else {
                    return None;
                };
                Some(tsig.mac().to_vec())
            });
            return Ok(());
        };
        let malformed = |error: hickory_proto::ProtoError| TsigError::Malformed(error.to_string());
        let key = &self.verified.key;
        let key_name = Name::from_ascii(format!("{}.", key.name)).map_err(malformed)?;
        let algorithm = HickoryAlgorithm::from_name(
            Name::from_ascii(format!("{}.", key.algorithm)).map_err(malformed)?,
        );
        let wire = response.to_vec().map_err(malformed)?;
        let prior_length = u16::try_from(prior.len()).unwrap_or(u16::MAX);
        let mut signed = Vec::with_capacity(wire.len() + prior.len() + 10);
        signed.extend_from_slice(&prior_length.to_be_bytes());
        signed.extend_from_slice(prior);
        signed.extend_from_slice(&wire);
        // The timers alone: 48 bits of time, then the fudge.
        signed.extend_from_slice(&now.to_be_bytes()[2..]);
        signed.extend_from_slice(&self.verified.fudge.to_be_bytes());
        let secret =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &key.secret)
                .map_err(|_| TsigError::Malformed("the key's secret is not base64".into()))?;
        let mac = hmac(key.algorithm, &secret, &signed);
        let tsig = TSIG::new(
            algorithm,
            now,
            self.verified.fudge,
            mac.clone(),
            response.id(),
            0,
            Vec::new(),
        );
        response.add_tsig(make_tsig_record(key_name, tsig));
        self.prior = Some(mac);
        Ok(())
    }
}

/// Signs `message`, a request of this server's own (a NOTIFY), with `key` at `now`, as RFC
/// 8945 §4.2 says: the MAC covers the message and the TSIG variables. Returns the MAC, which
/// the answer's signature covers.
pub fn sign_request(message: &mut Message, key: &TsigKey, now: u64) -> Result<Vec<u8>, TsigError> {
    let malformed = |error: hickory_proto::ProtoError| TsigError::Malformed(error.to_string());
    let key_name = Name::from_ascii(format!("{}.", key.name)).map_err(malformed)?;
    let algorithm = HickoryAlgorithm::from_name(
        Name::from_ascii(format!("{}.", key.algorithm)).map_err(malformed)?,
    );
    let pre = TSIG::new(algorithm, now, 300, Vec::new(), message.id(), 0, Vec::new());
    let wire = Wire(message.to_vec().map_err(malformed)?);
    let signed = message_tbs(None, &wire, &pre, &key_name).map_err(malformed)?;
    let secret = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &key.secret)
        .map_err(|_| TsigError::Malformed("the key's secret is not base64".into()))?;
    let mac = hmac(key.algorithm, &secret, &signed);
    message.add_tsig(make_tsig_record(key_name, pre.set_mac(mac.clone())));
    Ok(mac)
}
