# Shared by bin/start and bin/test: make sure Postgres and Redis run, the Debian packages a
# command needs are installed, the virtualenv has the pinned packages, and the database
# exists. Sourced, not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export DATABASE_URL=${DATABASE_URL:-postgres://localhost/weir}
export PATH="$ROOT/.venv/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

wait_for() {  # wait_for DESCRIPTION COMMAND...
    local what=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    say "$what did not come up"; return 1
}

ensure_services() {
    if ! pg_isready -h 127.0.0.1 -q; then
        say "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
        wait_for PostgreSQL pg_isready -h 127.0.0.1 -q
    fi
    ensure_redis
}

redis_settings() {  # the broker's host, port and ACL user, then its password, one a line
    # Read from the environment, so the password never appears on a command line.
    python3 - <<'PYTHON'
import os, sys
sys.path.insert(0, os.getcwd())
from urllib.parse import unquote, urlsplit
from contracts.redis_urls import with_password
url = urlsplit(with_password(os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")))
print(url.hostname or "localhost", url.port or 6379, unquote(url.username or "") or "-")
print(unquote(url.password or ""))
PYTHON
}

ensure_redis() {
    # Redis gets the password (WEIR_REDIS_PASSWORD, or the broker URL's) through the
    # environment: redis-cli reads REDISCLI_AUTH, a Redis started here reads it from stdin.
    local host port user password answer quoted
    { read -r host port user; IFS= read -r password; } < <(redis_settings)
    [ "$user" = "-" ] && user=""
    answer=$(redis_ping "$host" "$port" "$user" "$password")
    case "$answer" in
        *PONG*) return 0 ;;
        *NOAUTH*|*WRONGPASS*|*"AUTH failed"*)
            say "Redis on $host:$port refuses Weir: set WEIR_REDIS_PASSWORD (or the" \
                "password in CELERY_BROKER_URL) to the one it requires (README, Configuration)"
            return 1 ;;
    esac
    if [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ]; then
        say "Redis on $host:$port does not answer"; return 1
    fi
    say "starting Redis on port $port"
    mkdir -p /var/lib/redis /var/log/redis
    # A Redis started here is Weir's own: it requires the password when one is set.
    quoted=${password//\\/\\\\}
    quoted=${quoted//\"/\\\"}
    { [ -z "$password" ] || printf 'requirepass "%s"\n' "$quoted"; } |
        redis-server - --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis_pong "$host" "$port" "$user" "$password"
}

redis_ping() {  # redis_ping HOST PORT USER PASSWORD: prints Redis's answer (PONG, NOAUTH ...)
    if [ -n "$4" ]; then
        REDISCLI_AUTH=$4 redis-cli -h "$1" -p "$2" ${3:+--user "$3"} ping 2>&1 || true
    else
        redis-cli -h "$1" -p "$2" ping 2>&1 || true
    fi
}

redis_pong() { redis_ping "$@" | grep -q PONG; }

ensure_system_packages() {  # ensure_system_packages DEBIAN_PACKAGE...
    local missing=() package
    for package in "$@"; do
        if [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]
        then
            missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
        apt-get -y -q -o DPkg::Lock::Timeout=300)
    # A fresh machine may have no package lists yet: fetch them once and try again.
    if ! "${apt[@]}" install "${missing[@]}"; then
        "${apt[@]}" update
        "${apt[@]}" install "${missing[@]}"
    fi
}

ensure_local_names() {
    # Azure's SDKs reach Weir at names under localhost: blob accounts as
    # {account}.blob.localhost, scoring URIs as {endpoint}.{workspace}.localhost. glibc resolves
    # them with nss-myhostname; a stock Debian has no such module.
    local probe=weir-check.blob.localhost
    getent hosts "$probe" >/dev/null && return 0
    ensure_system_packages libnss-myhostname || true
    getent hosts "$probe" >/dev/null && return 0
    say "WARNING: $probe does not resolve, so Azure's SDKs cannot reach Weir's blob store" \
        "or scoring URIs. Fix: install libnss-myhostname, or add 'myhostname' to the" \
        "'hosts:' line of /etc/nsswitch.conf"
}

ensure_database() {
    local user
    user=$(whoami)
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_roles WHERE rolname='$user'" | grep -q 1; then
        say "creating database role $user"
        psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE ROLE \"$user\" LOGIN SUPERUSER"
    fi
    local db=${DATABASE_URL##*/}
    if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
        say "creating database $db"
        psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$db\" OWNER \"$user\""
    fi
}

ensure_virtualenv() {  # ensure_virtualenv REQUIREMENTS_FILE
    if [ ! -x .venv/bin/python ]; then
        say "creating the virtualenv"
        python3 -m venv .venv
    fi
    # The pip a Debian or pyenv Python ships (23.2 here) can fail to resolve the pinned set
    # (resolvelib's InconsistentCandidate on opentelemetry-sdk); a pinned newer pip resolves it.
    .venv/bin/pip install --quiet --disable-pip-version-check pip==25.3
    say "installing $1"
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$1"
    # Weir itself, editable: puts the `weir` command in .venv/bin.
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
}

ensure_client_venv() {  # ensure_client_venv NAME REQUIREMENTS_FILE; prints the venv's python
    # An Azure client the acceptance tests run unchanged, in a virtualenv of its own outside
    # the clone, keyed by the requirements file's content: built once per pinned set (with
    # uv, from .venv), then reused. It is built in a temporary directory and renamed into
    # place, so an interrupted build leaves no half-made virtualenv behind.
    local name=$1 requirements=$2 cache hash venv tmp
    cache=${WEIR_CLIENT_CACHE:-$HOME/.cache/weir/clients}
    hash=$(sha256sum "$requirements" | cut -c1-12)
    venv="$cache/$name-$hash"
    if [ ! -x "$venv/bin/python" ]; then
        say "building the $name client virtualenv in $venv"
        mkdir -p "$cache"
        # What a build killed outright (SIGKILL) left behind.
        find "$cache" -maxdepth 1 -name ".$name-*" -mmin +60 -exec rm -rf {} + 2>/dev/null || true
        tmp=$(mktemp -d "$cache/.$name-$hash.XXXXXX") && chmod 755 "$tmp"
        (
            trap 'rm -rf "$tmp"' EXIT
            trap 'exit 1' INT TERM HUP
            # uv reads neither pip's certificate nor pip's index settings.
            export SSL_CERT_FILE=${SSL_CERT_FILE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
            [ -z "${PIP_INDEX_URL:-}" ] || export UV_DEFAULT_INDEX=${UV_DEFAULT_INDEX:-$PIP_INDEX_URL}
            # Chained, not left to `set -e`: bash drops it inside $(...).
            uv venv --quiet --relocatable --python python3 --no-python-downloads "$tmp" >&2 &&
                uv pip install --quiet --python "$tmp/bin/python" -r "$requirements" >&2 &&
                # Another run may have finished the same virtualenv meanwhile: keep that one.
                { mv -T "$tmp" "$venv" 2>/dev/null || [ -x "$venv/bin/python" ]; }
        ) || { say "could not build the $name client virtualenv"; return 1; }
    fi
    printf '%s\n' "$venv/bin/python"
}

ensure_node_client() {  # ensure_node_client NAME PACKAGE_DIR; prints its node_modules/.bin
    # A Node.js program the tests run (Azurite), installed by npm outside the clone from
    # PACKAGE_DIR's package.json and package-lock.json, keyed by their content: installed
    # once per pinned set, then reused. Built in a temporary directory and renamed into
    # place, as ensure_client_venv does, so an interrupted install leaves nothing half-made.
    local name=$1 package=$2 cache hash target tmp
    cache=${WEIR_CLIENT_CACHE:-$HOME/.cache/weir/clients}
    hash=$(cat "$package/package.json" "$package/package-lock.json" | sha256sum | cut -c1-12)
    target="$cache/$name-$hash"
    if [ ! -d "$target/node_modules/.bin" ]; then
        say "installing $name with npm in $target"
        mkdir -p "$cache"
        find "$cache" -maxdepth 1 -name ".$name-*" -mmin +60 -exec rm -rf {} + 2>/dev/null || true
        tmp=$(mktemp -d "$cache/.$name-$hash.XXXXXX") && chmod 755 "$tmp"
        (
            trap 'rm -rf "$tmp"' EXIT
            trap 'exit 1' INT TERM HUP
            cp "$package/package.json" "$package/package-lock.json" "$tmp/" &&
                npm ci --prefix "$tmp" --omit=dev --ignore-scripts --no-audit --no-fund \
                    --loglevel=error >&2 &&
                { mv -T "$tmp" "$target" 2>/dev/null || [ -d "$target/node_modules/.bin" ]; }
        ) || { say "could not install $name"; return 1; }
    fi
    printf '%s\n' "$target/node_modules/.bin"
}
