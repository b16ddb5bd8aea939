#!/usr/bin/env bash
# One idempotent set-up for a fresh machine: venv, torch, solo-learn, this project, the demo data.
#
#   bash scripts/setup.sh [VENV]          (what `make setup`, `make demo` and `make test` run)
#
# Environment knobs:
#   PYTHON          interpreter that creates the venv (default python3; needs >= 3.10)
#   TORCH_PACKAGES  torch pins (default "torch==2.14.1 torchvision==0.29.1")
#   SOLO_WHEEL_DIR  folder with a solo-learn wheel and its SHA256SUMS (default ../shared/wheels)
#   SKIP_DEMO_DATA  1: do not try to install the Debian package dataset-fashion-mnist
#
# A second run with nothing changed takes a second: the venv carries a stamp of everything the
# install depends on (this script, pyproject.toml, constraints.txt, the wheel's checksum).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_PACKAGES=${TORCH_PACKAGES:-"torch==2.14.1 torchvision==0.29.1"}
SOLO_WHEEL_DIR=${SOLO_WHEEL_DIR:-../shared/wheels}
SOLO_COMMIT=9187ea39c2c3f43c455ab06664d2b019a9802954
SOLO_GIT="git+https://github.com/vturrisi/solo-learn@${SOLO_COMMIT}"
FASHION_MNIST_DEB_DIR=/usr/share/datasets/fashion-mnist

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# 1. python >= 3.10 -------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH: install Python >= 3.10 (or set PYTHON=/path/to/python3)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$("$PYTHON" --version 2>&1) is too old: sfrik-plugin needs Python >= 3.10 (set PYTHON=/path/to/python3.11)"

# 2. the solo-learn source: a checked wheel, else the pinned GitHub commit ---------------------------
solo_wheel=""
if compgen -G "$SOLO_WHEEL_DIR/solo_learn-*.whl" >/dev/null; then
  solo_wheel=$(ls "$SOLO_WHEEL_DIR"/solo_learn-*.whl | head -n 1)
  [ -f "$SOLO_WHEEL_DIR/SHA256SUMS" ] || die "$SOLO_WHEEL_DIR has $solo_wheel but no SHA256SUMS to check it against"
  expected=$(grep " $(basename "$solo_wheel")\$" "$SOLO_WHEEL_DIR/SHA256SUMS" | cut -d' ' -f1 || true)
  [ -n "$expected" ] || die "$SOLO_WHEEL_DIR/SHA256SUMS has no line for $(basename "$solo_wheel")"
  actual=$(sha256sum "$solo_wheel" | cut -d' ' -f1)
  [ "$expected" = "$actual" ] || die "checksum mismatch for $solo_wheel: SHA256SUMS says $expected, the file is $actual"
  solo_source="$solo_wheel"
  say "solo-learn: wheel $solo_wheel (sha256 checked)"
else
  solo_source="$SOLO_GIT"
  actual="git-$SOLO_COMMIT"
  say "solo-learn: no wheel in $SOLO_WHEEL_DIR; will install GitHub commit ${SOLO_COMMIT:0:7}"
fi

# 3. the venv, unless it is already up to date ----------------------------------------------------
stamp_input="$(cat scripts/setup.sh pyproject.toml constraints.txt) $TORCH_PACKAGES $actual"
stamp=$(printf '%s' "$stamp_input" | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.sfrik-setup" ] && [ "$(cat "$VENV/.sfrik-setup")" = "$stamp" ] && [ -x "$VENV/bin/python" ]; then
  say "environment $VENV is up to date"
else
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV" || die "could not create a venv (Debian/Ubuntu: apt-get install python3-venv)"
  fi
  export PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
  pip=("$VENV/bin/python" -m pip install -q)
  say "installing $TORCH_PACKAGES (about a minute)"
  # shellcheck disable=SC2086
  "${pip[@]}" $TORCH_PACKAGES || die "could not install $TORCH_PACKAGES"
  say "installing solo-learn"
  if ! "${pip[@]}" "$solo_source"; then
    if [ -z "$solo_wheel" ]; then
      die "could not install solo-learn from GitHub (no network?). Put its wheel and SHA256SUMS in $SOLO_WHEEL_DIR (or set SOLO_WHEEL_DIR) and run again."
    fi
    die "could not install $solo_wheel (its dependencies come from PyPI: is the package index reachable?)"
  fi
  say "installing sfrik-plugin (editable) with the solo, dev, benchmark and lejepa extras"
  "${pip[@]}" -e ".[solo,dev,benchmark,lejepa]" || die "could not install sfrik-plugin"
  "$VENV/bin/python" -c "import solo, sfrik_plugin.solo" 2>/dev/null \
    || die "solo-learn is installed but does not import: $("$VENV/bin/python" -c 'import solo' 2>&1 | tail -n 1)"
  printf '%s' "$stamp" > "$VENV/.sfrik-setup"
  say "environment ready: $VENV"
fi

# 4. the demo data: Fashion-MNIST from the Debian package where possible -------------------------
if [ -d "$FASHION_MNIST_DEB_DIR" ]; then
  say "demo data: $FASHION_MNIST_DEB_DIR (Debian package dataset-fashion-mnist)"
elif [ "${SKIP_DEMO_DATA:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "demo data: installing the Debian package dataset-fashion-mnist (30 MB)"
  { apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; } \
    || say "demo data: apt-get could not install dataset-fashion-mnist; the demo will download Fashion-MNIST instead"
else
  say "demo data: no $FASHION_MNIST_DEB_DIR; the demo downloads Fashion-MNIST (checksum-verified, cached) or takes --data DIR"
fi
