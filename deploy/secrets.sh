#!/bin/sh
# Generates the Compose deployment's secrets into DIR (default
# deploy/secrets), each only if it is absent, readable by its owner only.
# Rerunning it changes nothing: ENCRYPTION_KEY is the root key, and a new
# one would leave every stored key unreadable.
set -eu
dir=${1:-deploy/secrets}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

random_hex() { # $1 bytes
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex "$1"
  else
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
    echo
  fi
}

made=
for name in jwt_secret encryption_key postgres_password; do
  if [ ! -s "$dir/$name" ]; then
    random_hex 32 >"$dir/$name.tmp"
    mv "$dir/$name.tmp" "$dir/$name"
    made="$made $name"
  fi
done
# The wallet reads PostgreSQL's password from a passfile named in
# DATABASE_URL, so the password is in no environment variable.
if [ ! -s "$dir/pgpass" ]; then
  printf 'postgres:5432:apiwallet:apiwallet:%s\n' "$(cat "$dir/postgres_password")" >"$dir/pgpass.tmp"
  mv "$dir/pgpass.tmp" "$dir/pgpass"
  made="$made pgpass"
fi
chmod 600 "$dir"/*
# Run by root, the secrets go to the image's user (65532), whom Compose
# otherwise runs the wallet as; run by anyone else, make deploy runs the
# wallet as that user.
if [ "$(id -u)" = 0 ]; then
  chown 65532:65532 "$dir/jwt_secret" "$dir/encryption_key" "$dir/pgpass"
fi
if [ -n "$made" ]; then
  echo "generated in $dir:$made (back up encryption_key: without it stored keys cannot be decrypted)"
else
  echo "secrets in $dir kept as they are"
fi
