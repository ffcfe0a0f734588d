#!/usr/bin/env bash
# Restores a backup made by backup.sh into an EMPTY database and object store.
#
#   deploy/backup/restore.sh <backup.tar.age>
#
# Environment: the target's DATABASE_URL (PostgreSQL: an existing, empty database; SQLite: a
# file that does not exist yet), its AMTSPLATZ_STORAGE__* / AMTSPLATZ_DATA_DIR, and
#   BACKUP_IDENTITY    the age identity file (private key) that decrypts the backup
#   BACKUP_SERVER_BIN  the server binary (default: `server` on PATH)
# Every object's SHA-256 is checked against the backup's list before anything is stored.
# Start the server afterwards as usual: it applies migrations newer than the backup.
set -euo pipefail

backup="${1:?usage: restore.sh <backup.tar.age>}"
identity="${BACKUP_IDENTITY:?set BACKUP_IDENTITY to the age identity file}"
server="${BACKUP_SERVER_BIN:-server}"
data_dir="${AMTSPLATZ_DATA_DIR:-./data}"
url="${DATABASE_URL:-${AMTSPLATZ_DATABASE__URL:-sqlite://$data_dir/amtsplatz.db}}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
age --decrypt --identity "$identity" "$backup" | tar -C "$work" -xf -
grep -q '^amtsplatz-backup 1$' "$work/MANIFEST" || { echo "not an Amtsplatz backup" >&2; exit 1; }
(cd "$work/objects" && sha256sum --quiet --strict -c "$work/objects.sha256")

case "$url" in
  postgres://*|postgresql://*)
    [ -f "$work/database.dump" ] || { echo "the backup holds no PostgreSQL dump" >&2; exit 1; }
    # The grants name cluster-wide roles the migrations create; a new cluster lacks them.
    psql --quiet --no-psqlrc -v ON_ERROR_STOP=1 --dbname="$url" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amtsplatz_app') THEN
    CREATE ROLE amtsplatz_app NOLOGIN NOSUPERUSER NOBYPASSRLS; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'amtsplatz_outbox') THEN
    CREATE ROLE amtsplatz_outbox NOLOGIN NOSUPERUSER NOBYPASSRLS; END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
SQL
    pg_restore --no-owner --exit-on-error --single-transaction --dbname="$url" "$work/database.dump"
    ;;
  sqlite:*)
    [ -f "$work/database.sqlite" ] || { echo "the backup holds no SQLite database" >&2; exit 1; }
    file="${url#sqlite:}"; file="${file#//}"; file="${file%%\?*}"
    [ ! -e "$file" ] || { echo "$file exists: restore into a new database" >&2; exit 1; }
    mkdir -p "$(dirname "$file")"
    cp "$work/database.sqlite" "$file"
    ;;
  *) echo "unknown database URL scheme: ${url%%:*}" >&2; exit 2 ;;
esac

"$server" objects import "$work/objects"
echo "restored $(sed -n 's/^created //p' "$work/MANIFEST") ($(wc -l < "$work/objects.sha256") objects)"
