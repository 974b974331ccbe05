#!/usr/bin/env bash
# Fetches a real GeoLite2 database for tests/audit.rs and benches/run.py: GeoLite2-City of
# 3 July 2018 (CC BY-SA 4.0, by MaxMind, https://www.maxmind.com), as the PyPI package
# maxminddb-geolite2 2018.703 ships it in its source archive. Prints the path of the .mmdb.
#
#   tests/fetch-geolite2.sh [DIRECTORY]    (default: target/test-data)
#
# Idempotent: a database already there (with the right checksum) is not fetched again. The
# archive's SHA-256 is checked before anything of it is used.
set -euo pipefail
cd "$(dirname "$0")/.."
directory=${1:-target/test-data}
database="$directory/GeoLite2-City.mmdb"
archive_sha256=2bd118c5567f3a8323d6c5da23a6e6d52cfc09cd9987b54eb712cf6001a96e03
database_sha256=55ad8f80b9f9a800272ab36ead4e814987bd258413cb03cfa80fa873478f62e9

if [ -f "$database" ] && echo "$database_sha256  $database" | sha256sum --check --status; then
    echo "$database"
    exit 0
fi
mkdir -p "$directory"
work=$(mktemp -d "$directory/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" \
    maxminddb-geolite2==2018.703 >&2
archive="$work/maxminddb-geolite2-2018.703.tar.gz"
echo "$archive_sha256  $archive" | sha256sum --check --status || {
    echo "fetch-geolite2: $archive does not have the expected SHA-256" >&2
    exit 1
}
tar -xzf "$archive" -C "$work" maxminddb-geolite2-2018.703/_maxminddb_geolite2/GeoLite2-City.mmdb
# Renamed into place: a test reading the path never sees half a file.
mv "$work/maxminddb-geolite2-2018.703/_maxminddb_geolite2/GeoLite2-City.mmdb" "$database.part"
mv "$database.part" "$database"
echo "$database"
