#!/bin/sh
# make test: a running PostgreSQL the tests can create databases in.
#
# Uses the machine's own cluster when one is online; starts it when it is down;
# creates one when there is none (Debian's `postgresql` package, which
# `make system-deps` installs). The tests log in over the local socket as the
# user running them (Debian's default `peer` authentication), so this makes that
# user a PostgreSQL role that may create databases. Each test run then makes a
# database of its own and drops it at the end (tests/postgres.py).
set -eu

as_postgres() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
	echo "test-postgres: PostgreSQL is not installed (make system-deps installs the 'postgresql' package)" >&2
	exit 1
fi

cluster=$(pg_lsclusters -h | awk '$4 == "online" {print $1, $2; exit}')
if [ -z "$cluster" ]; then
	cluster=$(pg_lsclusters -h | awk '{print $1, $2; exit}')
	if [ -z "$cluster" ]; then
		version=$(ls /usr/lib/postgresql | sort -n | tail -1)
		echo "test-postgres: creating PostgreSQL $version cluster 'main'"
		as_root pg_createcluster "$version" main >/dev/null
		cluster="$version main"
	fi
	echo "test-postgres: starting PostgreSQL cluster $cluster"
	# shellcheck disable=SC2086  # "version name" are two arguments
	as_root pg_ctlcluster $cluster start
fi

port=$(pg_lsclusters -h | awk -v c="$cluster" '$1 " " $2 == c {print $3; exit}')
user=$(id -un)
exists=$(as_postgres psql -p "$port" -XAtc "SELECT 1 FROM pg_roles WHERE rolname = '$user'" postgres)
if [ "$exists" != 1 ]; then
	echo "test-postgres: creating PostgreSQL role $user (may create databases)"
	as_postgres psql -p "$port" -Xqc "CREATE ROLE \"$user\" LOGIN CREATEDB" postgres
fi
