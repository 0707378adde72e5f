# Shared by scripts/test.sh and scripts/demo.sh: a virtualenv with ecowatch installed.
# Usage: source scripts/bootstrap.sh EXTRA   (EXTRA: demo or test)

ecowatch_apt_install() {
    # Installs the Debian packages given that are missing; a no-op when all are there.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "ecowatch: installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ecowatch_venv() {
    local extra="$1"
    if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
        ecowatch_apt_install python3-venv
    fi
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    local stamp=".venv/.ecowatch-$extra-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        if [ "$extra" = demo ]; then
            # A regular install: the demo needs no live link to the source tree, and an editable
            # one makes setuptools print a notice about folders named like the packages.
            .venv/bin/python -m pip install -q ".[$extra]"
        else
            .venv/bin/python -m pip install -q -e ".[$extra]"
        fi
        touch "$stamp"
    fi
}
