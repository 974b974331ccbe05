#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and installs it on this machine (as root, outside any
# container: CI runs on a throw-away machine), then checks what it put where and runs the
# installed binary: --version, and CLI commands on a temporary database. Removes it at the end.
# Usage: dist/check-deb.sh   (run by .ci/run; needs root, dpkg and cargo-deb)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null; then
    cargo install --locked cargo-deb --version 3.8.0 2>&1 | tail -n 3
fi
deb=$(cargo deb --locked 2>/dev/null | tail -n 1)
test -f "$deb" || { echo "cargo deb made no package"; exit 1; }
echo "built $deb"
dpkg-deb --info "$deb" | grep -E "Package|Version|Depends|Recommends"
dpkg-deb --contents "$deb" | awk '{print $6}' | sort > /tmp/certadns-deb-contents
for path in ./usr/bin/certadns-ddns ./etc/certadns-ddns/config.toml \
    ./usr/share/doc/certadns-ddns/README.md ./usr/share/doc/certadns-ddns/pdns-conf/pdns.unix.conf \
    ./usr/share/doc/certadns-ddns/examples/ddclient.conf ./usr/share/man/man1/certadns-ddns.1.gz \
    ./usr/share/bash-completion/completions/certadns-ddns; do
    grep -qx "$path" /tmp/certadns-deb-contents || { echo "missing from the package: $path"; exit 1; }
done
grep -q "certadns-ddns.service" /tmp/certadns-deb-contents || { echo "no systemd unit in the package"; exit 1; }
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/certadns-ddns/config.toml \
    || { echo "the config is not a conffile"; exit 1; }

# An upgrade must be a restart, which keeps pdns's connections in systemd's fd store: never a
# stop before unpacking and a start after, which flushes it (README, "Restarts and upgrades").
# systemd is not PID 1 here, so the scripts are read, not run.
ctl=$(mktemp -d)
dpkg-deb -e "$deb" "$ctl"
if grep -q "deb-systemd-invoke stop" "$ctl/prerm" 2>/dev/null \
    && ! grep -B1 "deb-systemd-invoke stop" "$ctl/prerm" | grep -q '"$1" = remove'; then
    echo "prerm stops the service on upgrade:"; cat "$ctl/prerm"; exit 1
fi
grep -q "_dh_action=restart" "$ctl/postinst" \
    || { echo "postinst does not restart the service on upgrade"; exit 1; }
rm -rf "$ctl"

# Installing starts nothing here (.ci/run's policy-rc.d); it must still succeed.
apt-get install -y -qq "$deb" >/dev/null
trap 'dpkg --purge certadns-ddns >/dev/null 2>&1 || true' EXIT
getent passwd certadns-ddns >/dev/null || { echo "no certadns-ddns user"; exit 1; }
test "$(stat -c '%U:%G %a' /etc/certadns-ddns/config.toml)" = "root:certadns-ddns 640" \
    || { echo "config ownership: $(stat -c '%U:%G %a' /etc/certadns-ddns/config.toml)"; exit 1; }
if getent passwd pdns >/dev/null; then
    id -nG pdns | tr ' ' '\n' | grep -qx certadns-ddns || { echo "pdns is not in the group"; exit 1; }
fi
unit=$(systemctl cat certadns-ddns.service 2>/dev/null || cat /lib/systemd/system/certadns-ddns.service)
grep -q "^Type=notify" <<<"$unit" || { echo "the installed unit is not the shipped one"; exit 1; }
/usr/bin/certadns-ddns --version
# The packaged config as an admin uses it: its database path, not the working directory's.
missing=$(cd / && /usr/bin/certadns-ddns --config /etc/certadns-ddns/config.toml zone list 2>&1 || true)
grep -q "no database at /var/lib/certadns-ddns/certadns.db" <<<"$missing" \
    || { echo "the packaged config does not name /var/lib/certadns-ddns/certadns.db: $missing"; exit 1; }
db=$(mktemp -d)/check.db
/usr/bin/certadns-ddns --db "$db" init
/usr/bin/certadns-ddns --db "$db" zone add dyn.example.net --ns ns1.example.net
echo "a long password" | /usr/bin/certadns-ddns --db "$db" user add alice \
    --email alice@example.net --plan plus --password-stdin
/usr/bin/certadns-ddns --db "$db" domain add home.dyn.example.net --owner alice --type A --ip 192.0.2.1
/usr/bin/certadns-ddns --db "$db" domain export | grep -qx "home.dyn.example.net,alice,A,192.0.2.1,,,,"
echo "the package installs and runs"
