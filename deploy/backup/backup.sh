#!/usr/bin/env bash
# Encrypted backup of one Amtsplatz installation: a consistent database dump plus every object
# of the object store, in one file encrypted with age, keeping the N newest in a folder.
#
#   deploy/backup/backup.sh <folder>
#
# Reads the server's own configuration from the environment (DATABASE_URL, AMTSPLATZ_DATA_DIR,
# AMTSPLATZ_STORAGE__*: the same variables the server runs with), and:
#   BACKUP_RECIPIENTS  file of age recipients (public keys; `age-keygen -y key.txt`); only
#                      they can read the backup: the machine that backs up holds no key that
#                      decrypts it
#   BACKUP_KEEP        how many backups to keep in <folder> (default 14)
#   BACKUP_SERVER_BIN  the server binary (default: `server` on PATH)
# (Not AMTSPLATZ_*: the server reads those as its settings and refuses unknown ones.)
#
# Consistency: PostgreSQL is dumped with pg_dump (one snapshot, while the server runs); SQLite
# with VACUUM INTO (one read transaction). Objects are copied after the dump: an object is never
# changed in place, so every file a dumped row names is there unless it was deleted in between
# (then the restored row names a missing file, which the drill's check of every attachment's
# SHA-256 would show); objects newer than the dump are orphans the sweeper removes.
# Keys (signing key, payment secrets key) are not in the backup: keep them where the server's
# secrets are kept (a Kubernetes Secret, a vault); the database's sealed secrets need them.
#
# Needs: age, tar, sha256sum, and pg_dump (PostgreSQL, a client of the server's major version or
# newer) or sqlite3 (SQLite).
set -euo pipefail

dest="${1:?usage: backup.sh <folder>}"
recipients="${BACKUP_RECIPIENTS:?set BACKUP_RECIPIENTS to a file of age recipients}"
keep="${BACKUP_KEEP:-14}"
server="${BACKUP_SERVER_BIN:-server}"
data_dir="${AMTSPLATZ_DATA_DIR:-./data}"
url="${DATABASE_URL:-${AMTSPLATZ_DATABASE__URL:-sqlite://$data_dir/amtsplatz.db}}"
[[ "$keep" =~ ^[1-9][0-9]*$ ]] || { echo "BACKUP_KEEP must be a positive number" >&2; exit 2; }

mkdir -p "$dest"
work=$(mktemp -d "$dest/.backup-XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 077

stamp=$(date -u +%Y%m%dT%H%M%SZ)
case "$url" in
  postgres://*|postgresql://*)
    kind=postgres
    # Custom format: compressed, restorable table by table (pg_restore --no-owner then makes the
    # restoring role the owner; restore.sh creates the roles the grants name).
    db_file=database.dump
    pg_dump --format=custom --dbname="$url" --file="$work/$db_file"
    ;;
  sqlite:*)
    kind=sqlite
    file="${url#sqlite:}"; file="${file#//}"; file="${file%%\?*}"
    [ -f "$file" ] || { echo "no SQLite database at $file" >&2; exit 1; }
    db_file=database.sqlite
    sqlite3 "$file" "VACUUM INTO '$work/$db_file'"
    ;;
  *) echo "unknown database URL scheme: ${url%%:*}" >&2; exit 2 ;;
esac

"$server" objects export "$work/objects" >/dev/null
(cd "$work/objects" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) > "$work/objects.sha256"
printf 'amtsplatz-backup 1\ncreated %s\ndatabase %s\nobjects %s\n' \
  "$stamp" "$kind" "$(wc -l < "$work/objects.sha256")" > "$work/MANIFEST"

out="$dest/amtsplatz-$stamp.tar.age"
[ ! -e "$out" ] || { echo "$out exists: one backup per second" >&2; exit 1; }
tar -C "$work" -cf - MANIFEST objects.sha256 objects "$db_file" \
  | age --encrypt --recipients-file "$recipients" --output "$out.partial"
mv "$out.partial" "$out"
echo "$out"

# Retention: the newest $keep backups stay (names sort by time).
ls -1 "$dest"/amtsplatz-*.tar.age | sort -r | tail -n +"$((keep + 1))" | while read -r old; do
  rm -f -- "$old"
done
