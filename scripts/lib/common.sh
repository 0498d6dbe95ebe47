# Shared by scripts/test and scripts/demo: install prerequisites explicitly, so a
# fresh Debian 12 machine (as root) needs nothing but these scripts.

# Debian packages the tests and the lab use. --no-install-recommends matters:
# wireguard-tools recommends a kernel image that can never be used here.
SYSTEM_PACKAGES=(
  gcc               # the C linker (cc) that rustc links with, and the compiler for -sys crates
  libc6-dev
  nftables          # nft: the lab router's firewall, `nft -c` checks of rendered rulesets
  wireguard-tools   # wg, wg-quick: real WireGuard tooling
  wireguard-go      # userspace WireGuard (this kernel has no WireGuard module)
  iproute2          # ip netns, veth, bridges
  openssh-server    # the lab router's SSH server (router apply/audit tests)
  openssh-client
  zbar-tools        # zbarimg decodes peer QR codes in tests
  python3
  python3-venv      # venv for the official OpenAI/Anthropic/Ollama SDK tests
  systemd           # systemd-analyze verifies the rendered unit
  ca-certificates
  curl
  cmake             # builds OpenWrt's own uci (and libubox) from shared/thirdparty for the tests
  make
  pkg-config
  libjson-c-dev
)

step() { printf '\n==> %s\n' "$*"; }

fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_ci() { [ "${CI:-}" = "true" ]; }

missing_packages() {
  local missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  echo "${missing[@]}"
}

install_system_packages() {
  local missing
  missing=$(missing_packages)
  if [ -z "$missing" ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    fail "missing Debian packages: $missing (run as root, or: apt-get install --no-install-recommends $missing)"
  fi
  step "apt-get install --no-install-recommends $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# The toolchain: rustup's, 1.89 or newer. Debian 12's rustc (1.63) and rustc-web
# (1.85 on its mirrors) are too old for the workspace's edition and rust-version,
# and neither ships clippy or rustfmt, so the scripts do not install them.
RUST_MIN=1.89
RUSTUP_HINT="install Rust with rustup: curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt && . \"\$HOME/.cargo/env\""

# version_at_least 1.95.0 1.89 -> true
version_at_least() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

# require_rust [lint]: cargo and rustc new enough; with `lint`, clippy and rustfmt too.
require_rust() {
  command -v cargo >/dev/null 2>&1 || fail "cargo not found: $RUSTUP_HINT"
  local version
  version=$(rustc --version 2>/dev/null | awk '{print $2}')
  version_at_least "${version:-0}" "$RUST_MIN" ||
    fail "rustc ${version:-?} is too old: sovereign needs $RUST_MIN or newer (rustup update stable, or $RUSTUP_HINT)"
  if [ "${1:-}" = lint ]; then
    cargo fmt --version >/dev/null 2>&1 || fail "rustfmt is missing: rustup component add rustfmt"
    cargo clippy --version >/dev/null 2>&1 || fail "clippy is missing: rustup component add clippy"
  fi
}

# The official SDKs, pinned loosely, in a project-local venv.
setup_python_venv() {
  if [ ! -x .venv/bin/python ]; then
    step "python3 -m venv .venv"
    python3 -m venv .venv
  fi
  step "pip install -r tests/sdk/requirements.txt"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/sdk/requirements.txt
}

# Real coding agents for the agent tests: Claude Code and Codex pinned by
# tests/agents/package-lock.json, Aider by tests/agents/requirements.txt (in its
# own venv). npm comes with Node.js; Debian's own packages are used only where no
# Node.js is installed (a nodesource nodejs already has npm, and Debian's npm
# package would conflict with it).
setup_agents() {
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      fail "npm not found (run as root, or: apt-get install --no-install-recommends nodejs npm)"
    fi
    step "apt-get install --no-install-recommends nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  local stamp=tests/agents/node_modules/.sovereign-installed
  if ! { [ -x tests/agents/node_modules/.bin/claude ] && cmp -s tests/agents/package-lock.json "$stamp"; }; then
    step "npm ci --ignore-scripts --prefix tests/agents"
    npm ci --ignore-scripts --no-audit --no-fund --prefix tests/agents
    # Claude Code's only install script copies its platform's native binary into
    # place; run that one, and no other package's, explicitly.
    node tests/agents/node_modules/@anthropic-ai/claude-code/install.cjs
    cp tests/agents/package-lock.json "$stamp"
  fi
  if [ ! -x tests/agents/.venv/bin/python ]; then
    step "python3 -m venv tests/agents/.venv"
    python3 -m venv tests/agents/.venv
  fi
  step "pip install -r tests/agents/requirements.txt"
  tests/agents/.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/agents/requirements.txt
}
