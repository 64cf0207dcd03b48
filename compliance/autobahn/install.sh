#!/usr/bin/env bash
# Install Autobahn|Testsuite (wstest, Python 2.7 only) outside the repository.
#
#   bash compliance/autobahn/install.sh        # prints the wstest wrapper path last
#
# Layout under ${AUTOBAHN_HOME:-$HOME/.cache/refserver-autobahn}:
#   apt/      private apt configuration, package lists and cache (bullseye)
#   debs/     downloaded Debian 11 debs (python2.7, libssl1.1, libffi7, ...)
#   py27/     those debs unpacked with `dpkg -x` (nothing touches the system)
#   venv3/    Python 3 venv holding virtualenv<20.22 (last one that makes 2.7 envs)
#   venv27/   Python 2.7 virtualenv with the suite and its era dependencies
#   bin/wstest  wrapper script to use
#
# Idempotent: a stamp file records what was installed; re-running with the
# same inputs only re-checks that the wrapper works (about a second).
#
# Environment:
#   AUTOBAHN_HOME           install root (default ~/.cache/refserver-autobahn)
#   AUTOBAHN_DEBIAN_MIRROR  Debian mirror URL (default: the one apt already uses)
#   AUTOBAHN_FORCE=1        reinstall from scratch (downloaded debs are kept)
#   PYTHON3                 Python 3 interpreter used for virtualenv (default python3)
#
# Needs: a Debian-based system (apt-get, dpkg), python3 with venv, a C compiler
# and patchelf.  When run as root, missing patchelf / gcc are apt-get installed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AB_HOME="${AUTOBAHN_HOME:-${HOME:-/root}/.cache/refserver-autobahn}"
PYTHON3="${PYTHON3:-python3}"
REQS="$HERE/requirements-py27.txt"
SUITE_VERSION="25.10.1"
VIRTUALENV_SPEC="virtualenv<20.22"
# Debian 11 packages that together make a working python2.7 with _ssl,
# _hashlib, _ctypes, zlib, bz2, pyexpat and the C headers (for wsaccel).
DEBS=(python2.7 python2.7-minimal libpython2.7 libpython2.7-stdlib
      libpython2.7-minimal python2.7-dev libpython2.7-dev libssl1.1 libffi7)
INSTALL_FORMAT=1   # bump when the layout / procedure below changes

log() { printf 'autobahn-install: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$AB_HOME" = /* ]] || AB_HOME="$PWD/$AB_HOME"
case "$AB_HOME/" in
  "$(cd "$HERE/../.." && pwd)/"*) die "AUTOBAHN_HOME must be outside the repository ($AB_HOME)";;
esac
mkdir -p "$AB_HOME"

# One installer at a time per AUTOBAHN_HOME.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$AB_HOME/.lock"
  flock 9
fi

WRAPPER="$AB_HOME/bin/wstest"
STAMP_FILE="$AB_HOME/.installed"
stamp() {
  {
    echo "format=$INSTALL_FORMAT suite=$SUITE_VERSION virtualenv=$VIRTUALENV_SPEC"
    echo "debs=${DEBS[*]}"
    cat "$REQS"
  } | sha256sum | cut -d' ' -f1
}
STAMP="$(stamp)"

check_wrapper() {
  [[ -x "$WRAPPER" ]] || return 1
  env -u PYTHONPATH -u PYTHONHOME "$AB_HOME/venv27/bin/python" -c '
import ssl, _hashlib, ctypes, zlib, bz2, pyexpat, json
import twisted, autobahn, autobahntestsuite.wstest
import wsaccel.xormask, wsaccel.utf8validator
' >/dev/null 2>&1
}

if [[ "${AUTOBAHN_FORCE:-0}" != 1 && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP" ]] && check_wrapper; then
  log "already installed in $AB_HOME"
  echo "$WRAPPER"
  exit 0
fi
rm -f "$STAMP_FILE"

# --- host tools --------------------------------------------------------------
APT_UPDATED=0
ensure_tool() {  # ensure_tool COMMAND DEBIAN_PACKAGE...
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  [[ "$(id -u)" == 0 ]] || die "'$cmd' is missing; install it (apt-get install $*) or run as root"
  log "installing $* (system apt) for '$cmd'"
  export DEBIAN_FRONTEND=noninteractive
  if [[ $APT_UPDATED == 0 ]] && ! apt-get install -y -q --no-install-recommends "$@" >&2; then
    apt-get update -q >&2
    APT_UPDATED=1
    apt-get install -y -q --no-install-recommends "$@" >&2
  elif [[ $APT_UPDATED == 1 ]]; then
    apt-get install -y -q --no-install-recommends "$@" >&2
  fi
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after installing $*"
}
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this installer needs a Debian-based system"
command -v dpkg >/dev/null 2>&1 || die "dpkg not found"
ensure_tool patchelf patchelf
ensure_tool cc gcc libc6-dev
command -v "$PYTHON3" >/dev/null 2>&1 || die "$PYTHON3 not found"
if ! "$PYTHON3" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  # Debian's own python3 ships venv/ensurepip separately.
  [[ "$(id -u)" == 0 ]] || die "$PYTHON3 has no working venv (apt-get install python3-venv)"
  log "installing python3-venv (system apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q python3-venv >&2 || { apt-get update -q >&2 && apt-get install -y -q python3-venv >&2; }
fi

# --- 1. Debian 11 python2.7 debs via a private apt configuration -------------
debian_mirror() {
  if [[ -n "${AUTOBAHN_DEBIAN_MIRROR:-}" ]]; then echo "$AUTOBAHN_DEBIAN_MIRROR"; return; fi
  local f uri
  # deb822 .sources files: first URIs line of a stanza that is not -security.
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    uri="$(awk '
      /^[[:space:]]*$/ { if (u != "" && s !~ /security/) { print u; exit } u=""; s=""; next }
      /^URIs:/   { u=$2 }
      /^Suites:/ { s=$0 }
      END { if (u != "" && s !~ /security/) print u }' "$f" | grep -m1 -i 'debian' || true)"
    if [[ -n "$uri" ]]; then echo "${uri%/}"; return; fi
  done
  # one-line format
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    uri="$(sed -e 's/\[[^]]*\]//' "$f" | awk '$1=="deb" && $2 ~ /debian/ && $3 !~ /security/ {print $2; exit}')"
    if [[ -n "$uri" ]]; then echo "${uri%/}"; return; fi
  done
  echo "http://deb.debian.org/debian"
}

have_all_debs() {
  local p
  for p in "${DEBS[@]}"; do
    compgen -G "$AB_HOME/debs/${p}_*.deb" >/dev/null || return 1
  done
}

if ! have_all_debs; then
  MIRROR="$(debian_mirror)"
  log "downloading Debian 11 (bullseye) debs from $MIRROR"
  APTD="$AB_HOME/apt"
  mkdir -p "$APTD/lists/partial" "$APTD/cache/archives/partial" "$APTD/etc/sources.list.d" \
           "$APTD/etc/preferences.d" "$APTD/etc/apt.conf.d" "$AB_HOME/debs"
  KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
  if [[ -f "$KEYRING" ]]; then
    echo "deb [signed-by=$KEYRING] $MIRROR bullseye main" > "$APTD/etc/sources.list"
  else
    echo "deb $MIRROR bullseye main" > "$APTD/etc/sources.list"
  fi
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$APTD/etc/sources.list"
    -o "Dir::Etc::SourceParts=$APTD/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$APTD/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$APTD/etc/preferences.d"
    -o "Dir::State::Lists=$APTD/lists"
    -o "Dir::State::status=/dev/null"
    -o "Dir::Cache=$APTD/cache"
    -o "Acquire::Check-Valid-Until=false"
    -o "APT::Get::List-Cleanup=false"
    -o "Debug::NoLocking=true"
  )
  [[ "$(id -u)" == 0 ]] && APT_OPTS+=(-o "APT::Sandbox::User=root")
  apt-get "${APT_OPTS[@]}" update -q >&2 || die "apt-get update (private bullseye config) failed"
  (cd "$AB_HOME/debs" && apt-get "${APT_OPTS[@]}" download "${DEBS[@]}" >&2) \
    || die "apt-get download failed"
  have_all_debs || die "some debs are missing after download"
fi

# --- 2. unpack into a private prefix and fix library lookup ------------------
PY27_ROOT="$AB_HOME/py27"
PY27="$PY27_ROOT/usr/bin/python2.7"
log "unpacking debs into $PY27_ROOT"
rm -rf "$PY27_ROOT.tmp" "$PY27_ROOT"
mkdir -p "$PY27_ROOT.tmp"
for p in "${DEBS[@]}"; do
  for deb in "$AB_HOME/debs/${p}"_*.deb; do dpkg -x "$deb" "$PY27_ROOT.tmp"; done
done
# multiarch triplet (x86_64-linux-gnu on amd64), taken from the unpacked tree
LIBSSL="$(compgen -G "$PY27_ROOT.tmp/usr/lib/*/libssl.so.1.1" | head -n1)" || die "libssl.so.1.1 not unpacked"
MULTIARCH="$(basename "$(dirname "$LIBSSL")")"
DYNLOAD="$PY27_ROOT.tmp/usr/lib/python2.7/lib-dynload"
# Extension modules that link the bullseye-only libraries: point them at the
# unpacked copies (relative, DT_RPATH so it also covers libssl -> libcrypto).
for so in "$DYNLOAD"/_ssl.*.so "$DYNLOAD"/_hashlib.*.so "$DYNLOAD"/_ctypes.*.so; do
  patchelf --force-rpath --set-rpath "\$ORIGIN/../../$MULTIARCH" "$so"
done
patchelf --set-rpath '$ORIGIN' "$LIBSSL"
mv "$PY27_ROOT.tmp" "$PY27_ROOT"
"$PY27" -c 'import ssl, _hashlib, ctypes, zlib, bz2, pyexpat, json' \
  || die "the unpacked python2.7 is missing a core module"

# --- 3. virtualenv (Python 3) -> Python 2.7 environment -----------------------
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
if ! "$AB_HOME/venv3/bin/python" -c 'import virtualenv' >/dev/null 2>&1; then
  log "creating $AB_HOME/venv3 with $VIRTUALENV_SPEC"
  rm -rf "$AB_HOME/venv3"
  "$PYTHON3" -m venv "$AB_HOME/venv3" || die "'$PYTHON3 -m venv' failed (on Debian: apt-get install python3-venv)"
  "$AB_HOME/venv3/bin/python" -m pip install -q "$VIRTUALENV_SPEC" >&2
fi
log "creating Python 2.7 environment $AB_HOME/venv27"
rm -rf "$AB_HOME/venv27"
"$AB_HOME/venv3/bin/python" -m virtualenv -q --no-periodic-update \
  --app-data "$AB_HOME/virtualenv-app-data" -p "$PY27" "$AB_HOME/venv27" >&2

# --- 4. the suite and its dependencies ---------------------------------------
INC="$PY27_ROOT/usr/include"
# Debian's python2.7 was built with CC=$MULTIARCH-gcc; fall back to plain cc.
if ! command -v "$MULTIARCH-gcc" >/dev/null 2>&1; then
  export CC="cc -pthread" LDSHARED="cc -pthread -shared"
fi
log "installing dependencies (pip, Python 2.7)"
CFLAGS="-I$INC -I$INC/python2.7 -I$INC/$MULTIARCH/python2.7 ${CFLAGS:-}" \
  "$AB_HOME/venv27/bin/python" -m pip install -q --no-warn-script-location -r "$REQS" >&2
log "installing autobahntestsuite==$SUITE_VERSION"
"$AB_HOME/venv27/bin/python" -m pip install -q --no-warn-script-location --no-deps \
  "autobahntestsuite==$SUITE_VERSION" >&2

# --- 5. wrapper ---------------------------------------------------------------
mkdir -p "$AB_HOME/bin"
cat > "$WRAPPER.tmp" <<EOF
#!/bin/sh
# Autobahn|Testsuite $SUITE_VERSION (Python 2.7), installed by refserver's
# compliance/autobahn/install.sh.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONSAFEPATH
PYTHONWARNINGS=ignore
export PYTHONWARNINGS
exec "$AB_HOME/venv27/bin/python" "$AB_HOME/venv27/bin/wstest" "\$@"
EOF
chmod +x "$WRAPPER.tmp"
mv "$WRAPPER.tmp" "$WRAPPER"

check_wrapper || die "installed, but the environment does not import (see above)"
"$WRAPPER" --autobahnversion >&2 || die "wstest does not start"
echo "$STAMP" > "$STAMP_FILE"
log "done"
echo "$WRAPPER"
