#!/usr/bin/env bash
# Idempotent set-up of what the local stack and the tests need (Debian 12):
# JDK >= 17, Maven, Kafka jars in <state>/kafka-libs, Zipkin's exec jar in <state>/zipkin-libs,
# PostgreSQL server binaries, Prometheus (Debian's package), and the project virtualenv at .venv
# (pip install -e '.[dev]').
#   deploy/install.sh [-q]     -q: print nothing when there is nothing to do
# Env: CONCORD_PYTHON (interpreter for the venv; default python3.11, else python3).
set -euo pipefail
COMPONENT=install
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUIET=0
[[ "${1:-}" == "-q" || "${1:-}" == "--quiet" ]] && QUIET=1
ok() { [[ "$QUIET" == 1 ]] || say "$*"; }

need_root_for() {
    [[ "$(id -u)" == 0 ]] || die "$1 is missing and installing it needs root (apt-get install $2)"
}

java_major() {
    local v
    v="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    [[ -n "$v" ]] || return 1
    if [[ "$v" == 1.* ]]; then v="${v#1.}"; fi
    echo "${v%%[.+-]*}"
}

ensure_java() {
    local major
    major="$(java_major 2>/dev/null || echo 0)"
    if ((major >= 17)); then
        ok "java $major ok"
        return 0
    fi
    need_root_for "java >= 17" openjdk-17-jre-headless
    apt_install openjdk-17-jre-headless
    major="$(java_major 2>/dev/null || echo 0)"
    ((major >= 17)) || die "java is still $major after installing openjdk-17 (check update-alternatives --config java)"
}

ensure_maven() {
    if command -v mvn >/dev/null; then
        ok "maven ok"
        return 0
    fi
    need_root_for maven maven
    apt_install maven
}

# fetch_maven_libs WHAT POM DIR GLOB: the artifacts POM names, copied from Maven Central into DIR;
# re-fetched only when POM changes (stamp = its sha256). GLOB (relative to DIR) proves they came.
fetch_maven_libs() {
    local what="$1" pom="$2" libs="$3" glob="$4" want
    want="$(sha256_of "$pom")"
    if [[ -f "$libs/.pom.sha256" && "$(<"$libs/.pom.sha256")" == "$want" ]] &&
        compgen -G "$libs/$glob" >/dev/null; then
        ok "$what jars ok ($libs)"
        return 0
    fi
    say "fetching $what jars from Maven Central into $libs"
    rm -rf "$libs.tmp"
    mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
        "-DoutputDirectory=$libs.tmp" >"$LOG_DIR/install-mvn.log" 2>&1 || {
        log_tail "$LOG_DIR/install-mvn.log"
        die "mvn could not fetch the $what jars (is Maven Central reachable?)"
    }
    compgen -G "$libs.tmp/$glob" >/dev/null || die "mvn ran but no $glob arrived in $libs.tmp"
    echo "$want" >"$libs.tmp/.pom.sha256"
    if diff -rq -x .pom.sha256 "$libs" "$libs.tmp" >/dev/null 2>&1; then
        # Same jars: keep the directory a running JVM may be reading from.
        mv -f "$libs.tmp/.pom.sha256" "$libs/.pom.sha256"
        rm -rf "$libs.tmp"
    else
        rm -rf "$libs"
        mv "$libs.tmp" "$libs"
    fi
    say "$what jars: $(compgen -G "$libs/*.jar" | wc -l) files"
}

ensure_kafka_libs() {
    fetch_maven_libs Kafka "$DEPLOY_DIR/kafka/pom.xml" "$STATE_DIR/kafka-libs" "kafka_2.13-*.jar"
}

# SPEC §14.1: Zipkin's self-contained exec jar (the POM excludes its transitive dependencies).
ensure_zipkin_jar() {
    fetch_maven_libs Zipkin "$DEPLOY_DIR/zipkin/pom.xml" "$STATE_DIR/zipkin-libs" "zipkin-server-*-exec.jar"
}

# SPEC §14.1: Debian's prometheus (with promtool). --no-install-recommends keeps the node exporter
# out; deploy/prometheus.sh runs our own instance, never the package's system service.
ensure_prometheus() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        ok "prometheus ok ($(prometheus --version 2>&1 | head -n1 | cut -d' ' -f3))"
        return 0
    fi
    need_root_for prometheus prometheus
    apt_install prometheus
    # On a host booted with systemd the package starts its own daemon on :9090, the port ours wants:
    # switch off the service this install just started (containers deny the start via policy-rc.d).
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
    command -v promtool >/dev/null || die "prometheus installed but promtool not found"
}

ensure_postgres() {
    if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
        ok "postgresql server ok ($(ls -d /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n1))"
        return 0
    fi
    need_root_for "postgresql server" postgresql
    apt_install postgresql
    compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || die "postgresql installed but no server binary found"
}

# SPEC §14.2: the console's browser tests drive Debian's headless chromium through its chromedriver
# (/usr/bin/chromium, /usr/bin/chromedriver); nothing downloads a browser build of its own.
ensure_chromium() {
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        ok "chromium ok ($(chromium --version 2>/dev/null | head -n1))"
        return 0
    fi
    need_root_for chromium "chromium chromium-driver"
    apt_install chromium chromium-driver
    command -v chromedriver >/dev/null || die "chromium-driver installed but chromedriver not found"
}

pick_python() {
    local c
    for c in "${CONCORD_PYTHON:-}" python3.11 python3; do
        [[ -n "$c" ]] || continue
        command -v "$c" >/dev/null || continue
        if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$c"
            return 0
        fi
    done
    return 1
}

# pip install -e '.[dev]' again only when pyproject.toml changed (stamp = its sha256).
ensure_venv() {
    local pyproject="$REPO_ROOT/pyproject.toml" stamp="$VENV_DIR/.pyproject.sha256" py want
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then
        py="$(pick_python)" || {
            need_root_for "python >= 3.11" python3
            apt_install python3 python3-venv
            py="$(pick_python)" || die "no python >= 3.11 found"
        }
        say "creating virtualenv $VENV_DIR with $("$py" --version)"
        if ! "$py" -m venv "$VENV_DIR" 2>/dev/null; then
            rm -rf "$VENV_DIR"
            # Debian's python3 ships without ensurepip until python3-venv is installed.
            need_root_for "python venv support" python3-venv
            apt_install python3-venv
            "$py" -m venv "$VENV_DIR"
        fi
    fi
    if [[ ! -f "$pyproject" ]]; then
        warn "no pyproject.toml yet: .venv has no project packages"
        return 0
    fi
    want="$(sha256_of "$pyproject")"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        ok "virtualenv ok ($VENV_DIR)"
        return 0
    fi
    say "pip install -e '.[dev]' into $VENV_DIR"
    rm -f "$stamp"
    (cd "$REPO_ROOT" && "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]') ||
        die "pip install -e '.[dev]' failed"
    echo "$want" >"$stamp"
}

ensure_java
ensure_maven
ensure_kafka_libs
ensure_zipkin_jar
ensure_postgres
ensure_prometheus
ensure_chromium
ensure_venv
ok "done"
