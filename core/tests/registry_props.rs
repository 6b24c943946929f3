//! Property tests of the registry decoder: whatever a record of the registry topic
//! holds, nothing panics; an entry is accepted only under its own webhook id (a record
//! cannot install its secrets for another webhook); and a refused record's error does
//! not repeat the secrets it carried.

use std::sync::LazyLock;

use hookline_core::registry::{
    Keyring, RegistryDecodeError, RegistryEntry, RegistryRecord, RegistryUpdate, decode, encode,
};
use hookline_testkit::fixtures;
use proptest::prelude::*;

fn entry(webhook_id: String, secret: String) -> RegistryEntry {
    RegistryEntry {
        secrets: vec![fixtures::secret(&secret)],
        ..fixtures::registry_entry(&webhook_id)
    }
}

static KEYRING: LazyLock<Keyring> = LazyLock::new(|| {
    let key = Keyring::generate_key();
    Keyring::new("k1", [("k1", key.as_str())]).expect("a keyring")
});

fn secret() -> impl Strategy<Value = String> {
    "whsec_[A-Za-z0-9+/]{32}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes as key and value: an update or a named error, never a panic; an
    /// upsert always carries the record's key as its id.
    #[test]
    fn arbitrary_records_never_panic(
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        value in prop::option::of(prop::collection::vec(any::<u8>(), 0..400)),
    ) {
        match decode(key.as_deref(), value.as_deref(), Some(&KEYRING)).map(|r| r.update) {
            Ok(RegistryUpdate::Upsert(entry)) => {
                prop_assert_eq!(Some(entry.webhook_id.as_bytes()), key.as_deref());
            }
            Ok(RegistryUpdate::Deleted { webhook_id }) => {
                prop_assert!(value.is_none());
                prop_assert_eq!(Some(webhook_id.as_bytes()), key.as_deref());
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    /// Entries round-trip under their own key and are refused under any other.
    #[test]
    fn an_entry_is_accepted_only_under_its_own_id(
        id in "[a-z0-9-]{1,36}",
        other in "[a-z0-9-]{1,36}",
        secret in secret(),
    ) {
        let entry = entry(id.clone(), secret);
        let value = encode(&entry, 1, &KEYRING);
        prop_assert_eq!(
            decode(Some(id.as_bytes()), Some(&value), Some(&KEYRING)).ok(),
            Some(RegistryRecord { version: 1, update: RegistryUpdate::Upsert(Box::new(entry)) })
        );
        if other != id {
            let refused = matches!(
                decode(Some(other.as_bytes()), Some(&value), Some(&KEYRING)),
                Err(RegistryDecodeError::KeyMismatch { .. })
            );
            prop_assert!(refused);
        }
    }

    /// A valid record with bytes flipped: refused, or decoded under its own key only;
    /// and the error of a refused record never repeats the secret.
    #[test]
    fn corrupted_records_are_refused_without_repeating_the_secret(
        secret in secret(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut value = encode(&entry("wh-1".into(), secret.clone()), 1, &KEYRING);
        for (at, byte) in flips {
            let i = at.index(value.len());
            value[i] = byte;
        }
        match decode(Some(b"wh-1"), Some(&value), Some(&KEYRING)).map(|r| r.update) {
            Ok(RegistryUpdate::Upsert(entry)) => prop_assert_eq!(entry.webhook_id, "wh-1"),
            Ok(RegistryUpdate::Deleted { .. }) => prop_assert!(false, "a value is not a tombstone"),
            Err(err) => {
                let text = format!("{err} {err:?}");
                let key = secret.trim_start_matches("whsec_");
                prop_assert!(!text.contains(key), "the error repeats the secret: {}", text);
            }
        }
    }
}
