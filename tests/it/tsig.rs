//! Issue 31, TSIG (RFC 8945): the signatures the real `nsupdate` makes, checked by
//! `auth::tsig::verify` for each algorithm, and every way a signature can be wrong.

use std::io::Write as _;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use certadns_ddns::auth::tsig::{TsigError, verify};
use certadns_ddns::model::tsig::{TsigAlgorithm, TsigKey, TsigScope, key_file};

use crate::common;

/// Makes the server's reply from the request as it arrived.
type Answerer<'a> = dyn Fn(&[u8]) -> Vec<u8> + 'a;

/// Runs `nsupdate` for one A record against a UDP socket standing in for the server, signed
/// with the key block `key` (none: unsigned). `answer` makes the server's reply from the
/// request as it arrived (none: no reply, and nsupdate is stopped). What arrived, whether
/// nsupdate exited 0, and what it said.
fn nsupdate_exchange(key: Option<&str>, answer: Option<&Answerer<'_>>) -> (Vec<u8>, bool, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("nsupdate");
    command.args(["-t", "5", "-u", "5", "-r", "0"]);
    if let Some(key) = key {
        let file = dir.path().join("key.conf");
        std::fs::write(&file, key).unwrap();
        command.arg("-k").arg(&file);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    write!(
        child.stdin.take().unwrap(),
        "server 127.0.0.1 {port}\nzone dyn.example\n\
         update add host.dyn.example 60 A 192.0.2.1\nsend\n"
    )
    .unwrap();
    let mut buffer = [0_u8; 4096];
    let (length, peer) = socket
        .recv_from(&mut buffer)
        .expect("nsupdate sent its UPDATE");
    let request = buffer[..length].to_vec();
    let Some(answer) = answer else {
        let _ = child.kill();
        let _ = child.wait();
        return (request, false, String::new());
    };
    socket.send_to(&answer(&request), peer).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (request, output.status.success(), said)
}

/// The UPDATE `nsupdate` sends, signed with `key` (none: unsigned).
fn sent_by_nsupdate(key: Option<&str>) -> Vec<u8> {
    nsupdate_exchange(key, None).0
}

/// What `nsupdate` makes of the answer `answer` gives to its UPDATE signed with `block`.
fn nsupdate_reads(block: &str, answer: impl Fn(&[u8]) -> Vec<u8>) -> (bool, String) {
    let (_, ok, said) = nsupdate_exchange(Some(block), Some(&answer));
    (ok, said)
}

/// A key of `algorithm` named `alice-key` with a fresh secret.
fn key(algorithm: TsigAlgorithm) -> TsigKey {
    TsigKey {
        id: 1,
        name: "alice-key".into(),
        algorithm,
        secret: certadns_ddns::auth::generate_tsig_secret(algorithm),
        scope: TsigScope::Account { user_id: 1 },
        is_active: true,
        created_at: "t".into(),
        last_used_at: None,
    }
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn what_nsupdate_signs_is_verified_and_every_wrong_signature_named() {
    if !common::require_tool("nsupdate") {
        return;
    }
    for algorithm in TsigAlgorithm::ALL {
        let alice = key(algorithm);
        let block = key_file(&alice.name, algorithm, &alice.secret);
        let message = sent_by_nsupdate(Some(&block));
        let found = |name: &str| {
            assert_eq!(name, "alice-key");
            Ok(Some(alice.clone()))
        };
        let verified =
            verify(&message, now(), found).unwrap_or_else(|error| panic!("{algorithm}: {error}"));
        assert_eq!(verified.key.name, "alice-key");
        assert_eq!(verified.mac.len(), algorithm.secret_len());
        assert!(now().abs_diff(verified.time_signed) < 60);

        // Another secret under the same name: BADSIG.
        let other = key(algorithm);
        let error = verify(&message, now(), |_| Ok(Some(other.clone()))).unwrap_err();
        assert!(
            matches!(error, TsigError::BadSig(_)),
            "{algorithm}: {error}"
        );
        assert_eq!(error.rcode(), 16);
        // No such key, or one of another algorithm: BADKEY.
        let error = verify(&message, now(), |_| Ok(None)).unwrap_err();
        assert!(matches!(error, TsigError::BadKey(_)), "{error}");
        assert_eq!(error.rcode(), 17);
        let other_algorithm = TsigAlgorithm::ALL
            .into_iter()
            .find(|other| *other != algorithm)
            .unwrap();
        let mismatched = TsigKey {
            algorithm: other_algorithm,
            ..alice.clone()
        };
        let error = verify(&message, now(), |_| Ok(Some(mismatched.clone()))).unwrap_err();
        assert!(matches!(error, TsigError::BadKey(_)), "{error}");
        // Signed an hour away from our clock (nsupdate's fudge is 300 s): BADTIME, and only
        // once the MAC checked out.
        let error = verify(&message, now() + 3600, |_| Ok(Some(alice.clone()))).unwrap_err();
        assert!(
            matches!(&error, TsigError::BadTime { verified, .. } if verified.fudge == 300),
            "{error}"
        );
        assert_eq!(error.rcode(), 18);
        // One changed byte of the update (192.0.2.1 to 192.0.2.2): BADSIG.
        let mut tampered = message.clone();
        let at = tampered
            .windows(4)
            .position(|window| window == [192, 0, 2, 1])
            .expect("the address in the message");
        tampered[at + 3] = 2;
        let error = verify(&tampered, now(), |_| Ok(Some(alice.clone()))).unwrap_err();
        assert!(matches!(error, TsigError::BadSig(_)), "{error}");
    }
    // No key: no TSIG record at all.
    let unsigned = sent_by_nsupdate(None);
    let error = verify(&unsigned, now(), |_| panic!("no key is looked up")).unwrap_err();
    assert!(matches!(error, TsigError::Unsigned), "{error}");
    // Not DNS.
    let error = verify(b"\x01\x02", now(), |_| panic!("no key is looked up")).unwrap_err();
    assert!(matches!(error, TsigError::Malformed(_)), "{error}");
}

/// The fuzz target's seed (`fuzz/seed.py`, an UPDATE the real nsupdate signed) verifies with
/// its key at its signing time, so the fuzzer starts from a message that reaches every check.
#[test]
fn the_fuzz_seed_is_a_valid_signed_update() {
    let seed: Vec<u8> = (0..)
        .step_by(2)
        .take_while(|at| *at < SEED.len())
        .map(|at| u8::from_str_radix(&SEED[at..at + 2], 16).unwrap())
        .collect();
    let alice = TsigKey {
        secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".into(),
        ..key(TsigAlgorithm::HmacSha256)
    };
    let verified = verify(&seed, 0x6b15_7c28, |_| Ok(Some(alice.clone()))).unwrap();
    assert_eq!(verified.time_signed, 0x6b15_7c28);
    assert_eq!(verified.fudge, 300);
}

/// The seed of `fuzz/seed.py`, hex.
const SEED: &str = "25ce280000010000000100010364796e076578616d706c65000006000104686f7374c00c00010001\
0000003c0004c000020109616c6963652d6b65790000fa00ff00000000003d0b686d61632d736861\
3235360000006b157c28012c00204ea8c9b304a7763d17a0fe6676f67f185fee43172866b4b296b0\
325660afdc1a25ce00000000";

/// The answer to `request`: its zone section, `code`, no records.
fn answer_to(request: &[u8], code: hickory_proto::op::ResponseCode) -> hickory_proto::op::Message {
    use hickory_proto::op::{Message, MessageType, OpCode};
    let request = Message::from_vec(request).unwrap();
    let mut answer = Message::new();
    answer
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Update)
        .set_response_code(code);
    answer.add_queries(request.queries().to_vec());
    answer
}

/// Issue 31, item 2 (answers): `sign_response` signs what the real nsupdate takes as the
/// server's answer, for every algorithm; an answer signed with another secret is refused by
/// it; a BADTIME answer is signed and tells nsupdate its clock is off.
#[test]
fn nsupdate_takes_the_answers_signed_for_it() {
    use certadns_ddns::auth::tsig::sign_response;
    use hickory_proto::op::ResponseCode;
    if !common::require_tool("nsupdate") {
        return;
    }
    for algorithm in TsigAlgorithm::ALL {
        let alice = key(algorithm);
        let block = key_file(&alice.name, algorithm, &alice.secret);
        let (ok, said) = nsupdate_reads(&block, |request| {
            let verified = verify(request, now(), |_| Ok(Some(alice.clone()))).unwrap();
            let mut answer = answer_to(request, ResponseCode::NoError);
            sign_response(&mut answer, &verified, now(), false).unwrap();
            answer.to_vec().unwrap()
        });
        assert!(ok, "{algorithm}: nsupdate refused a good answer: {said}");
        assert!(
            !said.to_ascii_lowercase().contains("tsig"),
            "{algorithm}: {said}"
        );

        // Signed with another secret under the same name: nsupdate must not believe it.
        let (ok, said) = nsupdate_reads(&block, |request| {
            let mut verified = verify(request, now(), |_| Ok(Some(alice.clone()))).unwrap();
            verified.key.secret = key(algorithm).secret;
            let mut answer = answer_to(request, ResponseCode::NoError);
            sign_response(&mut answer, &verified, now(), false).unwrap();
            answer.to_vec().unwrap()
        });
        assert!(!ok, "{algorithm}: a forged answer passed: {said}");
        assert!(
            said.to_ascii_lowercase().contains("tsig"),
            "{algorithm}: {said}"
        );
    }
    // A request an hour off our clock: NOTAUTH with BADTIME, signed, the server's time inside.
    let alice = key(TsigAlgorithm::HmacSha256);
    let block = key_file(&alice.name, alice.algorithm, &alice.secret);
    let (ok, said) = nsupdate_reads(&block, |request| {
        let later = now() + 3600;
        let Err(TsigError::BadTime { verified, .. }) =
            verify(request, later, |_| Ok(Some(alice.clone())))
        else {
            panic!("BADTIME expected");
        };
        let mut answer = answer_to(request, ResponseCode::NotAuth);
        sign_response(&mut answer, &verified, later, true).unwrap();
        answer.to_vec().unwrap()
    });
    assert!(!ok, "{said}");
    let said = said.to_ascii_lowercase();
    assert!(
        said.contains("notauth(badtime)") && said.contains("clocks are unsynchronized"),
        "nsupdate should say the time is off: {said}"
    );
}

/// Issue 31, item 2 (errors): a request whose key is unknown or whose signature is wrong gets
/// NOTAUTH with an unsigned TSIG record naming BADKEY or BADSIG (RFC 8945 §5.3.2), which the
/// real nsupdate reads as such.
#[test]
fn nsupdate_is_told_badkey_and_badsig() {
    use certadns_ddns::auth::tsig::unsigned_error;
    use hickory_proto::op::ResponseCode;
    if !common::require_tool("nsupdate") {
        return;
    }
    let alice = key(TsigAlgorithm::HmacSha512);
    let block = key_file(&alice.name, alice.algorithm, &alice.secret);
    for (wrong, expected) in [
        (None, "notauth(badkey)"),
        (Some(key(TsigAlgorithm::HmacSha512)), "notauth(badsig)"),
    ] {
        let (ok, said) = nsupdate_reads(&block, |request| {
            let error = verify(request, now(), |_| Ok(wrong.clone())).unwrap_err();
            let mut answer = answer_to(request, ResponseCode::NotAuth);
            unsigned_error(&mut answer, &error, now()).unwrap();
            answer.to_vec().unwrap()
        });
        assert!(!ok, "{said}");
        assert!(
            said.to_ascii_lowercase().contains(expected),
            "{expected}: {said}"
        );
    }
}

/// The seed with its MAC cut to (or padded with junk to) `length` bytes, the lengths in the record
/// made to match.
fn seed_with_mac_of(length: usize) -> Vec<u8> {
    let mut seed: Vec<u8> = (0..SEED.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&SEED[at..at + 2], 16).unwrap())
        .collect();
    // The record ends with: MAC size (2), MAC (32), original ID (2), error (2), other len (2).
    let mac_at = seed.len() - 6 - 32;
    let tail = seed.split_off(mac_at + 32);
    let mut mac = seed.split_off(mac_at);
    mac.resize(length, 0xab);
    seed.extend(mac);
    seed.extend(tail);
    let size_at = mac_at - 2;
    seed[size_at..size_at + 2].copy_from_slice(&u16::try_from(length).unwrap().to_be_bytes());
    // RDLENGTH stands before the algorithm name `hmac-sha256.` (13 bytes), the time (6) and
    // the fudge (2).
    let rdlength_at = size_at - 2 - 6 - 13 - 2;
    let rdlength = 61 - 32 + length;
    seed[rdlength_at..rdlength_at + 2]
        .copy_from_slice(&u16::try_from(rdlength).unwrap().to_be_bytes());
    seed
}

/// A truncated MAC is BADTRUNC (this service takes full-length MACs only); one shorter than
/// RFC 8945 allows, or longer than the hash, is malformed. Neither is ever taken.
#[test]
fn truncated_and_oversized_macs_are_refused_by_their_names() {
    let alice = TsigKey {
        secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".into(),
        ..key(TsigAlgorithm::HmacSha256)
    };
    let at = 0x6b15_7c28;
    let whole = seed_with_mac_of(32);
    assert!(
        verify(&whole, at, |_| Ok(Some(alice.clone()))).is_ok(),
        "the surgery keeps a good seed good"
    );
    let error = verify(&seed_with_mac_of(16), at, |_| Ok(Some(alice.clone()))).unwrap_err();
    assert!(matches!(error, TsigError::BadTrunc(_)), "{error}");
    assert_eq!(error.rcode(), 22);
    for length in [8, 0, 40] {
        let error = verify(&seed_with_mac_of(length), at, |_| Ok(Some(alice.clone()))).unwrap_err();
        assert!(
            matches!(error, TsigError::Malformed(_)),
            "{length}: {error}"
        );
    }
}
