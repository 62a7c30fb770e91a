# Sourced by .ci/run: PostgreSQL from Debian's packages, listening on 127.0.0.1, with a role
# and a database for the tune tests, which read the URL from $DLTOOL_TEST_POSTGRES.
# Safe to run again: installs, creates and starts only what is missing.

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

start_postgres() {
    if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    fi
    local version port
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
        as_root pg_createcluster "$version" main
    fi
    port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 ~ /^online/ { up = 1 } END { exit !up }'; then
        as_root pg_ctlcluster "$version" main start
    fi
    as_postgres psql -p "$port" -v ON_ERROR_STOP=1 -q -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dltool') THEN
            CREATE ROLE dltool LOGIN PASSWORD 'dltool';
        END IF; END \$\$;"
    if ! as_postgres psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = 'dltool_test'" | grep -q 1; then
        as_postgres createdb -p "$port" -O dltool dltool_test
    fi
    export DLTOOL_TEST_POSTGRES="postgresql://dltool:dltool@127.0.0.1:${port}/dltool_test"
}

start_postgres
