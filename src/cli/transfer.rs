//! Bulk import and export: `domain import FILE`, `domain export`, `user import FILE`,
//! `user export`.
//!
//! Files are CSV with a header row, or JSON Lines with the same keys; the format comes from
//! the file name (`.csv`, `.jsonl`, `.ndjson`) or `--format`.
//!
//! * domains: `fqdn,owner,type,address,interface_id,prefix_length,subnet_id,follows` (all but
//!   the first three may be empty, and the last four columns left out: files of earlier
//!   versions have `fqdn,owner,type,address`);
//! * users: `username,email,plan,password_hash`, the hash an argon2 PHC string as the source
//!   system stored it (`$argon2id$v=19$...`). Other schemes (bcrypt, scrypt, PBKDF2) cannot be
//!   checked here: import those users without a hash column value and set a password with
//!   `user password`, or have them sign in where they are and move the new argon2 hash.
//!
//! A CSV cell that a spreadsheet would run as a formula (one starting with `=`, `+`, `-`,
//! `@`, a tab or a carriage return) is written with a `'` before it, as OWASP advises, and an
//! import takes that `'` off again: an export imports back as it was. JSON Lines are written
//! as they are.
//!
//! An import reads and checks every row before it writes anything: each error names its line
//! (the header is line 1), and one bad row stops the import unless `--skip-invalid` drops the
//! bad rows. Rows are then written in transactions of [`BATCH`], so a running service's updates
//! wait at most one batch for the write lock.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Admin, print_line};
use crate::intel::IpIntel;
use crate::model::ownership;
use crate::model::{
    DomainName, HostSuffix, Plan, RecordType, check_family, normalize_email, normalize_username,
    parse_ip, shown,
};
use crate::store::audit::ChangeContext;
use crate::store::domains::NewDomain;
use crate::store::zones::{Zone, list_zones, nearest_suffix};
use crate::store::{StoreError, domains, records, timestamp, users};

/// Rows per write transaction.
const BATCH: usize = 5_000;

/// The most errors printed; the count says how many more there were.
const SHOWN_ERRORS: usize = 20;

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// `given`, else the format the file name says.
    fn of(given: Option<Self>, file: &Path) -> anyhow::Result<Self> {
        if let Some(format) = given {
            return Ok(format);
        }
        match file.extension().and_then(|ext| ext.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Ok(Self::Csv),
            Some(ext)
                if ext.eq_ignore_ascii_case("jsonl") || ext.eq_ignore_ascii_case("ndjson") =>
            {
                Ok(Self::Jsonl)
            }
            _ => anyhow::bail!(
                "cannot tell the format of {} from its name: use --format csv or --format jsonl",
                file.display()
            ),
        }
    }
}

/// A domain as files carry it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DomainRow {
    /// The name.
    fqdn: String,
    /// The owner's username.
    owner: String,
    /// `A` or `AAAA`.
    #[serde(rename = "type")]
    record_type: String,
    /// The address, if any.
    #[serde(default)]
    address: Option<String>,
    /// An AAAA host's interface identifier (`::a:b:c:d`), if it takes prefixes.
    #[serde(default)]
    interface_id: Option<String>,
    /// The prefix length its interface identifier applies to (64 when empty).
    #[serde(default)]
    prefix_length: Option<String>,
    /// Its subnet id below a shorter delegated prefix (0 when empty; decimal or `0x` hex).
    #[serde(default)]
    subnet_id: Option<String>,
    /// The name (same owner) whose prefixes it follows, if any.
    #[serde(default)]
    follows: Option<String>,
}

impl DomainRow {
    /// The host suffix the row's prefix cells give, checked (None: none given).
    fn suffix(&self, record_type: RecordType) -> Result<Option<HostSuffix>, String> {
        let cell = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
        };
        let (interface_id, length, subnet) = (
            cell(&self.interface_id),
            cell(&self.prefix_length),
            cell(&self.subnet_id),
        );
        let Some(interface_id) = interface_id else {
            if length.is_some() || subnet.is_some() {
                return Err("prefix_length and subnet_id need an interface_id".into());
            }
            return Ok(None);
        };
        if record_type != RecordType::Aaaa {
            return Err("an interface_id is for AAAA domains".into());
        }
        let interface_id: std::net::Ipv6Addr = interface_id
            .parse()
            .map_err(|error| format!("interface_id {}: {error}", shown(&interface_id)))?;
        let length: u8 = match length {
            Some(text) => text
                .parse()
                .map_err(|error| format!("prefix_length {}: {error}", shown(&text)))?,
            None => 64,
        };
        let subnet: u64 = match subnet {
            Some(text) => crate::model::parse_subnet_id(&text)
                .map_err(|error| format!("subnet_id {error}"))?,
            None => 0,
        };
        HostSuffix::new(interface_id, length, subnet)
            .map(Some)
            .map_err(|error| format!("interface_id: {error}"))
    }

    /// The name the row follows, checked (None: none given).
    fn leader(&self) -> Result<Option<DomainName>, String> {
        self.follows
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse()
                    .map_err(|error| format!("follows {}: {error}", shown(text)))
            })
            .transpose()
    }
}

/// A user as files carry them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct UserRow {
    /// Login name.
    username: String,
    /// Email address.
    email: String,
    /// Plan (`free` when empty).
    #[serde(default)]
    plan: Option<String>,
    /// An argon2 PHC string.
    #[serde(default)]
    password_hash: Option<String>,
}

/// A progress bar of `total` rows on standard error, drawn only when it is a terminal (a
/// 100,000-row import takes seconds); nothing in a pipe or a log.
fn progress(total: usize, verb: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(u64::try_from(total).unwrap_or(u64::MAX)),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} rows, {eta} left")
    {
        bar.set_style(style);
    }
    bar.set_message(verb.to_string());
    bar
}

/// What a spreadsheet would read as the start of a formula (OWASP's CSV injection list).
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A CSV cell as written: a `'` before a cell a spreadsheet would run as a formula.
fn to_cell(value: String) -> String {
    if value.starts_with(FORMULA_STARTS) {
        format!("'{value}")
    } else {
        value
    }
}

/// A CSV cell as read: [`to_cell`]'s `'` taken off again.
fn from_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

/// Writes `rows` to standard output in `format` (CSV cells through [`to_cell`]). A reader that
/// stops early (`| head`) ends the export quietly.
fn export_rows<T: Serialize>(
    format: Format,
    rows: impl ExactSizeIterator<Item = T>,
    cells: impl Fn(T) -> T,
) -> anyhow::Result<()> {
    let bar = progress(rows.len(), "exporting");
    let rows = rows.inspect(|_| bar.inc(1));
    let written = (|| -> anyhow::Result<()> {
        let stdout = std::io::stdout().lock();
        match format {
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(stdout);
                for row in rows {
                    csv.serialize(cells(row))?;
                }
                csv.flush()?;
            }
            Format::Jsonl => {
                let mut out = std::io::BufWriter::new(stdout);
                for row in rows {
                    serde_json::to_writer(&mut out, &row)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
        }
        Ok(())
    })();
    bar.finish_and_clear();
    match written {
        Err(error)
            if error.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || cause.downcast_ref::<csv::Error>().is_some_and(|csv| {
                        matches!(csv.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
                    })
            }) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Reads every row of `file`: `(line, row)` or `(line, why it could not be read)`.
fn read_rows<T: for<'de> Deserialize<'de>>(
    file: &Path,
    format: Format,
) -> anyhow::Result<Vec<(u64, Result<T, String>)>> {
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut rows = Vec::new();
    match format {
        Format::Csv => {
            let mut csv = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(reader);
            let headers = csv.headers().context("cannot read the header row")?.clone();
            for record in csv.records() {
                match record {
                    Ok(record) => {
                        let line = record.position().map_or(0, csv::Position::line);
                        let record: csv::StringRecord = record.iter().map(from_cell).collect();
                        let row = record
                            .deserialize::<T>(Some(&headers))
                            .map_err(|error| csv_error(&error));
                        rows.push((line, row));
                    }
                    Err(error) => {
                        let line = error.position().map_or(0, csv::Position::line);
                        rows.push((line, Err(csv_error(&error))));
                    }
                }
            }
        }
        Format::Jsonl => {
            use std::io::BufRead as _;
            for (index, line) in std::io::BufReader::new(reader).lines().enumerate() {
                let line_number = index as u64 + 1;
                let text = line.with_context(|| format!("cannot read line {line_number}"))?;
                if text.trim().is_empty() {
                    continue;
                }
                let row = serde_json::from_str::<T>(&text).map_err(|error| error.to_string());
                rows.push((line_number, row));
            }
        }
    }
    Ok(rows)
}

/// A CSV error without its position (the line is reported beside it).
fn csv_error(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!(
                "{len} fields where the header has {expected_len} (a value with a comma, such as \
                 an argon2 hash, must be in double quotes)"
            )
        }
        _ => error.to_string(),
    }
}

/// Reports the errors; `Err` when they stop the import.
fn check_errors(errors: &[(u64, String)], total: usize, skip_invalid: bool) -> anyhow::Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let mut stderr = std::io::stderr().lock();
    for (line, why) in errors.iter().take(SHOWN_ERRORS) {
        writeln!(stderr, "line {line}: {why}")?;
    }
    if errors.len() > SHOWN_ERRORS {
        writeln!(stderr, "... and {} more", errors.len() - SHOWN_ERRORS)?;
    }
    anyhow::ensure!(
        skip_invalid,
        "{} of {total} rows are invalid; nothing was imported (--skip-invalid imports the others)",
        errors.len()
    );
    Ok(())
}

/// `domain import FILE`.
pub(super) fn import_domains(
    admin: &Admin,
    file: &Path,
    format: Option<Format>,
    skip_invalid: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let rows = read_rows::<DomainRow>(file, Format::of(format, file)?)?;
    let total = rows.len();
    let store = &admin.store;
    let (checked, errors, holders) = store.read(|conn| {
        let zones = list_zones(conn)?;
        let zones: HashMap<&str, &Zone> = zones
            .iter()
            .map(|zone| (zone.name.as_str(), zone))
            .collect();
        let users = users::list_users(conn)?;
        let owners: HashMap<String, i64> = users
            .iter()
            .flat_map(|user| {
                [
                    (user.username.clone(), user.id),
                    (user.email.clone(), user.id),
                ]
            })
            .collect();
        let usernames: HashMap<i64, String> = users
            .into_iter()
            .map(|user| (user.id, user.username))
            .collect();
        // Who holds which names, and which (name, type) exist: in the store, then in the file.
        let mut holders = domains::holder_map(conn)?;
        let mut taken: HashSet<(String, RecordType)> = HashSet::new();
        // Each name's owner (for `follows`): the store's, then the file's.
        let mut names: HashMap<String, i64> = HashMap::new();
        for domain in domains::list_domains(conn, None)? {
            names.insert(domain.fqdn.clone(), domain.user_id);
            taken.insert((domain.fqdn, domain.record_type));
        }
        let mut checked = Vec::with_capacity(rows.len());
        let mut errors = Vec::new();
        for (line, row) in rows {
            let result = row.and_then(|row| {
                let fqdn: DomainName = row
                    .fqdn
                    .parse()
                    .map_err(|error| format!("fqdn {}: {error}", shown(&row.fqdn)))?;
                let record_type: RecordType = row
                    .record_type
                    .parse()
                    .map_err(|error| format!("type {}: {error}", shown(&row.record_type)))?;
                let ip = match row
                    .address
                    .as_deref()
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                {
                    Some(text) => {
                        let ip = parse_ip(text)
                            .map_err(|error| format!("address {}: {error}", shown(text)))?;
                        check_family(record_type, ip)
                            .map_err(|error| format!("address {}: {error}", shown(text)))?;
                        Some(ip)
                    }
                    None => None,
                };
                let owner = row.owner.trim().to_ascii_lowercase();
                let user_id = *owners
                    .get(&owner)
                    .ok_or_else(|| format!("owner {}: no such user", shown(&row.owner)))?;
                let zone = nearest_suffix(fqdn.as_str(), |suffix| Ok(zones.get(suffix).copied()))
                    .map_err(|error| error.to_string())?
                    .ok_or_else(|| format!("{fqdn} is not inside any zone"))?;
                let Ok(conflict) = ownership::check(fqdn.as_str(), user_id, &zone.name, &holders);
                if let Some(conflict) = conflict {
                    return Err(conflict.to_string());
                }
                if !taken.insert((fqdn.as_str().to_string(), record_type)) {
                    return Err(format!(
                        "{fqdn} {record_type} exists already (in the store or above)"
                    ));
                }
                records::check_record_fits(conn, zone, fqdn.as_str(), record_type.as_str())
                    .map_err(|error| error.to_string())?;
                let suffix = row.suffix(record_type)?;
                let leader = row.leader()?;
                if leader.as_ref() == Some(&fqdn) {
                    return Err(format!("{fqdn} cannot follow itself"));
                }
                holders.add(fqdn.as_str(), user_id, &usernames[&user_id], &zone.name);
                names.insert(fqdn.as_str().to_string(), user_id);
                Ok(NewDomain {
                    fqdn,
                    user_id,
                    zone: zone.clone(),
                    record_type,
                    ip,
                    suffix,
                    leader,
                })
            });
            match result {
                Ok(domain) => checked.push((line, domain)),
                Err(why) => errors.push((line, why)),
            }
        }
        // A leader may come later in the file than its followers: checked once all are read.
        let mut kept = Vec::with_capacity(checked.len());
        for (line, domain) in checked {
            match &domain.leader {
                Some(leader) if names.get(leader.as_str()) != Some(&domain.user_id) => {
                    errors.push((
                        line,
                        format!("follows {leader}, which is not a domain of the same owner"),
                    ))
                }
                _ => kept.push(domain),
            }
        }
        errors.sort_by_key(|(line, _)| *line);
        Ok((kept, errors, holders))
    })?;
    check_errors(&errors, total, skip_invalid)?;

    // The audit rows of first addresses say what `[audit]` knows of them, as `domain add` does.
    let intel = if checked.iter().any(|domain| domain.ip.is_some()) {
        IpIntel::load(&admin.config.audit)
            .context("cannot load the [audit] files of the config")?
            .0
    } else {
        IpIntel::none()
    };
    let mut imported = 0;
    let mut zones_touched = HashSet::new();
    let bar = progress(checked.len(), "importing");
    for batch in checked.chunks(BATCH) {
        let now = timestamp();
        let contexts: Vec<ChangeContext> = batch
            .iter()
            .map(|domain| ChangeContext {
                address_facts: domain
                    .ip
                    .map(|ip| vec![(ip, intel.facts(ip))])
                    .unwrap_or_default(),
                ..ChangeContext::admin()
            })
            .collect();
        store
            .write(|tx| {
                for (domain, context) in batch.iter().zip(&contexts) {
                    // Whom it follows is set once every name is in (below): a leader may
                    // come later in the file.
                    let first = NewDomain {
                        leader: None,
                        ..domain.clone()
                    };
                    domains::add_domain(tx, &holders, &first, context, &now)?;
                }
                Ok::<_, StoreError>(())
            })
            .with_context(|| {
                format!(
                    "writing failed after {imported} domains had been imported (each batch of \
                     {BATCH} is all or nothing)"
                )
            })?;
        imported += batch.len();
        bar.inc(u64::try_from(batch.len()).unwrap_or(0));
        zones_touched.extend(batch.iter().map(|domain| domain.zone.name.clone()));
    }
    bar.finish_and_clear();
    // Who follows whom, once every name is in (a leader may come after its followers).
    let following: Vec<&NewDomain> = checked
        .iter()
        .filter(|domain| domain.leader.is_some())
        .collect();
    if !following.is_empty() {
        store
            .write(|tx| {
                for domain in &following {
                    domains::set_follows(tx, &domain.fqdn, domain.leader.as_ref())?;
                }
                Ok::<_, StoreError>(())
            })
            .context("the domains are imported, but setting who follows whom failed")?;
    }
    // New names: drop the zones' cached negative answers.
    admin.purge(zones_touched.into_iter().collect());
    print_line(&format!(
        "imported {imported} domains{} in {} ms",
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({} invalid rows skipped)", errors.len())
        },
        started.elapsed().as_millis()
    ))
}

/// `domain export`: every domain, to standard output.
pub(super) fn export_domains(admin: &Admin, format: Format) -> anyhow::Result<()> {
    let domains = admin.store.read(|conn| domains::list_domains(conn, None))?;
    let rows = domains.into_iter().map(|domain| DomainRow {
        fqdn: domain.fqdn,
        owner: domain.owner,
        record_type: domain.record_type.to_string(),
        address: domain.ip.map(|ip| ip.to_string()),
        interface_id: domain
            .suffix
            .map(|suffix| suffix.interface_id().to_string()),
        prefix_length: domain
            .suffix
            .map(|suffix| suffix.prefix_length().to_string()),
        subnet_id: domain.suffix.map(|suffix| suffix.subnet_id().to_string()),
        follows: domain.follows,
    });
    export_rows(format, rows, |row| DomainRow {
        fqdn: to_cell(row.fqdn),
        owner: to_cell(row.owner),
        record_type: to_cell(row.record_type),
        address: row.address.map(to_cell),
        interface_id: row.interface_id.map(to_cell),
        prefix_length: row.prefix_length.map(to_cell),
        subnet_id: row.subnet_id.map(to_cell),
        follows: row.follows.map(to_cell),
    })
}

/// `user export`: every user, to standard output, as `user import` reads them (the password
/// hash included: the file is as secret as the store).
pub(super) fn export_users(admin: &Admin, format: Format) -> anyhow::Result<()> {
    let users = admin.store.read(users::list_users)?;
    let rows = users.into_iter().map(|user| UserRow {
        username: user.username,
        email: user.email,
        plan: Some(user.plan.to_string()),
        password_hash: Some(user.password_hash).filter(|hash| hash != NO_PASSWORD),
    });
    export_rows(format, rows, |row| UserRow {
        username: to_cell(row.username),
        email: to_cell(row.email),
        plan: row.plan.map(to_cell),
        password_hash: row.password_hash.map(to_cell),
    })
}

/// A checked user row, ready to write.
struct NewUser {
    /// Login name.
    username: String,
    /// Email.
    email: String,
    /// Plan.
    plan: Plan,
    /// The PHC string, or an unusable one (no password until `user password`).
    password_hash: String,
}

/// What a user without an imported hash gets: a string no password verifies against (not a
/// PHC string), until `user password` sets one.
const NO_PASSWORD: &str = "!no password: set one with `certadns-ddns user password`";

/// `user import FILE`.
pub(super) fn import_users(
    admin: &Admin,
    file: &Path,
    format: Option<Format>,
    skip_invalid: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let rows = read_rows::<UserRow>(file, Format::of(format, file)?)?;
    let total = rows.len();
    let store = &admin.store;
    let (checked, errors) = store.read(|conn| {
        let mut taken: HashSet<String> = HashSet::new();
        for user in users::list_users(conn)? {
            taken.insert(user.username);
            taken.insert(user.email);
        }
        let mut checked = Vec::new();
        let mut errors = Vec::new();
        for (line, row) in rows {
            let result = row.and_then(|row| {
                let username =
                    normalize_username(&row.username).map_err(|error| error.to_string())?;
                let email = normalize_email(&row.email).map_err(|error| error.to_string())?;
                let plan: Plan = match row.plan.as_deref().map(str::trim).filter(|p| !p.is_empty())
                {
                    Some(text) => text
                        .parse()
                        .map_err(|error| format!("plan {text:?}: {error}"))?,
                    None => Plan::Free,
                };
                let password_hash = match row
                    .password_hash
                    .as_deref()
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                {
                    Some(hash) => check_phc(hash)?,
                    None => NO_PASSWORD.to_string(),
                };
                for key in [&username, &email] {
                    if !taken.insert(key.clone()) {
                        return Err(format!("{key} exists already (in the store or above)"));
                    }
                }
                Ok(NewUser {
                    username,
                    email,
                    plan,
                    password_hash,
                })
            });
            match result {
                Ok(user) => checked.push(user),
                Err(why) => errors.push((line, why)),
            }
        }
        Ok((checked, errors))
    })?;
    check_errors(&errors, total, skip_invalid)?;
    let mut imported = 0;
    let bar = progress(checked.len(), "importing");
    for batch in checked.chunks(BATCH) {
        let now = timestamp();
        store.write(|tx| {
            for user in batch {
                users::insert_user(
                    tx,
                    &user.username,
                    &user.email,
                    &user.password_hash,
                    user.plan,
                    &now,
                )?;
            }
            Ok(())
        })?;
        imported += batch.len();
        bar.inc(u64::try_from(batch.len()).unwrap_or(0));
    }
    bar.finish_and_clear();
    let without = checked
        .iter()
        .filter(|user| user.password_hash == NO_PASSWORD)
        .count();
    print_line(&format!(
        "imported {imported} users{}{} in {} ms",
        if without > 0 {
            format!(", {without} without a password (set one with `user password`)")
        } else {
            String::new()
        },
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({} invalid rows skipped)", errors.len())
        },
        started.elapsed().as_millis()
    ))
}

/// `hash` if it is an argon2 PHC string this service verifies; else why not.
fn check_phc(hash: &str) -> Result<String, String> {
    match argon2::PasswordHash::new(hash) {
        Ok(parsed) if parsed.algorithm.as_str().starts_with("argon2") && parsed.hash.is_some() => {
            Ok(hash.to_string())
        }
        Ok(parsed) => Err(format!(
            "password_hash: {} hashes cannot be checked here; leave it empty and set a password \
             with `user password`",
            parsed.algorithm
        )),
        Err(_) if hash.starts_with("$2") => Err(
            "password_hash: bcrypt hashes cannot be checked here; leave it empty and set a \
             password with `user password`"
                .into(),
        ),
        Err(error) => Err(format!("password_hash: not a PHC string ({error})")),
    }
}

/// Arguments shared by the imports.
#[derive(Debug, clap::Args)]
pub(super) struct ImportArgs {
    /// The file: CSV with a header row, or JSON Lines.
    pub(super) file: PathBuf,
    /// Its format [default: from the file name: .csv, .jsonl or .ndjson].
    #[arg(long, value_enum)]
    pub(super) format: Option<Format>,
    /// Import the valid rows and report the others, instead of importing nothing.
    #[arg(long)]
    pub(super) skip_invalid: bool,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn hashes_are_argon2_phc_strings_or_refused_with_what_to_do() {
        let phc = crate::auth::hash_password("a long password").unwrap();
        assert_eq!(check_phc(&phc), Ok(phc.clone()));
        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert!(check_phc(bcrypt).unwrap_err().contains("bcrypt"));
        assert!(
            check_phc("$pbkdf2-sha256$i=29000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
                .unwrap_err()
                .contains("pbkdf2")
        );
        assert!(
            check_phc("plain text")
                .unwrap_err()
                .contains("not a PHC string")
        );
    }

    #[test]
    fn formats_come_from_the_name_or_the_flag() {
        assert_eq!(Format::of(None, Path::new("a.CSV")).unwrap(), Format::Csv);
        assert_eq!(
            Format::of(None, Path::new("a.ndjson")).unwrap(),
            Format::Jsonl
        );
        assert_eq!(
            Format::of(Some(Format::Csv), Path::new("a.txt")).unwrap(),
            Format::Csv
        );
        assert!(Format::of(None, Path::new("a.txt")).is_err());
    }
}
