//! Times as the store writes them and every layer shows them.

/// The current time as the store writes it (and every answer shows it): UTC, RFC 3339, milliseconds, `Z`.
///
/// The fixed width makes text order equal time order.
pub fn timestamp() -> String {
    timestamp_at(std::time::SystemTime::now())
}

/// `at` as the store writes times (see [`timestamp`]).
pub fn timestamp_at(at: std::time::SystemTime) -> String {
    use time::macros::format_description;
    time::OffsetDateTime::from(at)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .expect("formatting a UTC time cannot fail")
}
