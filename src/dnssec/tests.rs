//! Signing and denial, checked with hickory's own verifier.

use std::time::Duration;

use hickory_proto::dnssec::PublicKey;
use hickory_proto::rr::rdata::A;

use super::*;

fn signer(role_pairs: &[(&str, KeyRole)]) -> ZoneSigner {
    let dir = tempfile::tempdir().unwrap();
    let keys = role_pairs
        .iter()
        .enumerate()
        .map(|(i, (alg, role))| {
            let path = dir.path().join(format!("k{i}.pem"));
            std::fs::write(&path, generate_pem(alg).unwrap()).unwrap();
            ZoneKey::load(path.to_str().unwrap(), *role).unwrap()
        })
        .collect();
    ZoneSigner::new(
        Name::from_ascii("example.com.").unwrap(),
        keys,
        Duration::from_secs(14 * 86400),
    )
    .unwrap()
}

fn verifies(signer: &ZoneSigner, records: &[Record], sig: &Record) -> bool {
    let sig = rrsig(sig).unwrap();
    let key = signer
        .keys()
        .iter()
        .find(|k| k.tag == sig.input().key_tag)
        .unwrap();
    let tbs = TBS::from_input(&records[0].name, DNSClass::IN, sig.input(), records.iter()).unwrap();
    key.dnskey
        .public_key()
        .verify(tbs.as_ref(), sig.sig())
        .is_ok()
}

#[test]
fn every_set_is_signed_by_the_right_keys_and_verifies() {
    for alg in ["ecdsa-p256", "ed25519"] {
        let s = signer(&[(alg, KeyRole::Ksk), (alg, KeyRole::Zsk)]);
        let name = Name::from_ascii("www.example.com.").unwrap();
        let set: Vec<Record> = [[192, 0, 2, 1], [192, 0, 2, 2]]
            .iter()
            .map(|ip| {
                Record::from_rdata(
                    name.clone(),
                    60,
                    RData::A(A::from(std::net::Ipv4Addr::from(*ip))),
                )
            })
            .collect();
        let sigs = s.sign_cached(&set);
        assert_eq!(sigs.len(), 1, "only the ZSK signs an A set");
        assert!(verifies(&s, &set, &sigs[0]));
        // Order does not matter: the cache hands out the same signature for a rotation.
        let rotated: Vec<Record> = set.iter().rev().cloned().collect();
        assert_eq!(s.sign_cached(&rotated), sigs);
        assert!(verifies(&s, &rotated, &sigs[0]));
        let keys = s.dnskey_records(300);
        let key_sigs = s.sign_cached(&keys);
        assert_eq!(key_sigs.len(), 1, "only the KSK signs the DNSKEY set");
        assert!(verifies(&s, &keys, &key_sigs[0]));
        assert_eq!(s.ds_records(300).len(), 1);
    }
}

#[test]
fn a_tampered_set_does_not_verify() {
    let s = signer(&[("ecdsa-p256", KeyRole::Csk)]);
    let name = Name::from_ascii("www.example.com.").unwrap();
    let set = vec![Record::from_rdata(
        name.clone(),
        60,
        RData::A(A::new(192, 0, 2, 1)),
    )];
    let sigs = s.sign_cached(&set);
    let other = vec![Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 9)))];
    assert!(verifies(&s, &set, &sigs[0]));
    assert!(!verifies(&s, &other, &sigs[0]));
}

#[test]
fn the_cache_drops_sets_unused_for_two_builds() {
    let s = signer(&[("ed25519", KeyRole::Csk)]);
    let name = Name::from_ascii("www.example.com.").unwrap();
    let set = vec![Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1)))];
    s.begin_build();
    let first = s.sign_cached(&set);
    s.begin_build();
    assert_eq!(s.sign_cached(&set), first, "reused by the next build");
    assert_eq!(s.cached_sets(), 1);
    s.begin_build();
    s.begin_build();
    assert_eq!(
        s.cached_sets(),
        0,
        "dropped after two builds that did not ask for it"
    );
}

#[test]
fn denial_names_no_other_name() {
    let s = signer(&[("ed25519", KeyRole::Csk)]);
    let owner = Name::from_ascii("nope.example.com.").unwrap();
    let records = s.denial(&owner, None, 30);
    let RData::DNSSEC(DNSSECRData::NSEC(nsec)) = &records[0].data else {
        panic!("an NSEC first")
    };
    assert_eq!(
        nsec.next_domain_name().to_ascii(),
        "\\000.nope.example.com."
    );
    let types: Vec<RecordType> = nsec.type_bit_maps().collect();
    assert!(types.contains(&NXNAME) && types.contains(&RecordType::NSEC));
    assert!(verifies(&s, &records[..1], &records[1]));
}

#[test]
fn keys_of_other_algorithms_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = ZoneKey::load(missing.to_str().unwrap(), KeyRole::Csk).unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
    let p384 = dir.path().join("p384.pem");
    let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP384SHA384).unwrap();
    let body = data_encoding::BASE64.encode(der.secret_pkcs8_der());
    std::fs::write(
        &p384,
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let e = ZoneKey::load(p384.to_str().unwrap(), KeyRole::Csk).unwrap_err();
    assert!(e.contains("not supported"), "{e}");
    assert!(generate_pem("rsa").is_err());
}

#[test]
fn signatures_past_half_their_validity_are_renewed() {
    let mut s = signer(&[("ed25519", KeyRole::Csk)]);
    s.validity = Duration::from_secs(2);
    let name = Name::from_ascii("www.example.com.").unwrap();
    let set = vec![Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1)))];
    let first = s.sign_cached(&set);
    // More than half of the 2 s validity passes (a short, bounded wait).
    std::thread::sleep(Duration::from_millis(1100));
    let renewed = s.sign_cached(&set);
    let expiration = |r: &[Record]| rrsig(&r[0]).unwrap().input().sig_expiration.get();
    assert!(
        expiration(&renewed) > expiration(&first),
        "{first:?} {renewed:?}"
    );
    assert!(verifies(&s, &set, &renewed[0]));
}

/// A reload reads the key files again into a new signer. With the same keys it takes the
/// old signer (and its cache): the signatures it hands out are the ones already published,
/// not new ones. With another key it keeps the new signer.
#[test]
fn a_reload_with_the_same_keys_keeps_the_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let write_key = |name: &str| {
        let path = dir.path().join(name);
        // ECDSA: signing the same set again gives another signature (Ed25519 would not).
        std::fs::write(&path, generate_pem("ecdsa-p256").unwrap()).unwrap();
        path
    };
    let (first, second) = (write_key("first.pem"), write_key("second.pem"));
    let load = |key: &std::path::Path| {
        crate::answer::fixtures::inventory(&format!(
            "[zone.dnssec]\nkeys = [{{ file = {:?}, role = \"csk\" }}]\n",
            key.to_str().unwrap()
        ))
    };
    let set = |inventory: &crate::model::Inventory| {
        let signer = inventory.zones[0].dnssec.clone().unwrap();
        let name = Name::from_ascii("www.tke-demo.cn.").unwrap();
        let a = Record::from_rdata(name, 300, RData::A(A::new(192, 0, 2, 1)));
        signer.begin_build();
        signer.sign_cached(&[a])
    };
    let running = load(&first);
    let published = set(&running);

    let mut reloaded = load(&first);
    reloaded.keep_signers(&running);
    assert_eq!(
        set(&reloaded),
        published,
        "the same key: the published signature again"
    );

    let mut rekeyed = load(&second);
    rekeyed.keep_signers(&running);
    let fresh = set(&rekeyed);
    assert_ne!(fresh, published, "another key: signed anew");
    assert_ne!(
        rrsig(&fresh[0]).unwrap().input().key_tag,
        rrsig(&published[0]).unwrap().input().key_tag
    );
}
