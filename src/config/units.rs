//! Durations as the file writes them: the unit is in the key (`-ms`, `-secs`, `-days`).

/// Durations written as whole milliseconds (the key says `-ms`).
pub(crate) mod millis {
    use std::time::Duration;

    /// Writes whole milliseconds (for [`crate::config::Config::changed_keys`]).
    pub(crate) fn serialize<S: serde::Serializer>(
        value: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads whole milliseconds.
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }
}

/// Durations written as whole seconds (the key says `-secs`).
pub(crate) mod secs {
    use std::time::Duration;

    /// Writes whole seconds (for [`crate::config::Config::changed_keys`]).
    pub(crate) fn serialize<S: serde::Serializer>(
        value: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs())
    }

    /// Reads whole seconds.
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_secs)
    }
}

/// Durations written as whole days (the key says `-days`).
pub(crate) mod days {
    use std::time::Duration;

    /// Writes whole days (for [`crate::config::Config::changed_keys`]).
    pub(crate) fn serialize<S: serde::Serializer>(
        value: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs() / (24 * 3600))
    }

    /// Reads whole days.
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let days = <u64 as serde::Deserialize>::deserialize(d)?;
        days.checked_mul(24 * 3600)
            .map(Duration::from_secs)
            .ok_or_else(|| serde::de::Error::custom("too many days"))
    }
}
