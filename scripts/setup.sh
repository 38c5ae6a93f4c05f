#!/usr/bin/env bash
# Makes this machine ready to run confscale and its tests. Idempotent: a second run with everything present
# only checks and takes seconds. Prints what it does; stops with what is missing and how to get it.
set -euo pipefail

PULUMI_VERSION="3.248.0"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pulumi_root="${CONFSCALE_PULUMI_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/confscale/pulumi}"
pulumi_bin="$pulumi_root/bin"

say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages the tests run for real -------------------------------------------------------------------
# The servers the tests start (redis-sentinel for the failover test; setpriv ties a test's redis-server to its process), the programs that read the rendered files on a
# real machine (test/infra/real-consumers.test.ts; visudo for the Jitsi workers' sudoers rule), and what the rehearsal lab runs (test/rehearsal): namespaces, nftables.
declare -A package_of=(
  [redis-server]=redis-server [redis-sentinel]=redis-sentinel [prometheus]=prometheus [promtool]=prometheus [prometheus-node-exporter]=prometheus-node-exporter
  [cloud-init]=cloud-init [caddy]=caddy [shellcheck]=shellcheck [openssl]=openssl [curl]=curl
  [nft]=nftables [ip]=iproute2 [nsenter]=util-linux [setpriv]=util-linux [chromium]=chromium [visudo]=sudo
)
missing=()
for program in redis-server redis-sentinel prometheus promtool prometheus-node-exporter cloud-init caddy shellcheck openssl curl nft ip nsenter setpriv chromium visudo; do
  if command -v "$program" >/dev/null 2>&1 || [ -x "/usr/bin/$program" ] || [ -x "/usr/sbin/$program" ]; then
    say "$program: present"
  elif [[ ! " ${missing[*]} " == *" ${package_of[$program]} "* ]]; then
    missing+=("${package_of[$program]}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and no apt-get here: install them with your package manager"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "missing ${missing[*]}: run as root or install sudo, or: apt-get install ${missing[*]}"
    sudo="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq || fail "apt-get update failed: check the package sources, then run again"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed"
  # The packages start system services; the tests start their own servers on free loopback ports instead.
  for service in redis-server redis-sentinel prometheus prometheus-node-exporter caddy; do
    $sudo systemctl disable --now "$service" >/dev/null 2>&1 || $sudo service "$service" stop >/dev/null 2>&1 || true
  done
  # cloud-init is here only to check user data: it must not configure this machine at its next boot.
  if [[ " ${missing[*]} " == *" cloud-init "* ]]; then
    $sudo touch /etc/cloud/cloud-init.disabled
  fi
fi

# --- Go-built checkers: actionlint and compose-check (compose-go) --------------------------------------------------
ACTIONLINT_VERSION="v1.7.12"
VERSITYGW_VERSION="v1.8.0"
tools_bin="${XDG_CACHE_HOME:-$HOME/.cache}/confscale/tools/bin"
if command -v go >/dev/null 2>&1; then
  mkdir -p "$tools_bin"
  if [ -x "$tools_bin/actionlint" ] && [ "$("$tools_bin/actionlint" -version 2>/dev/null | head -n1)" = "$ACTIONLINT_VERSION" ]; then
    say "actionlint $ACTIONLINT_VERSION: present in $tools_bin"
  else
    say "building actionlint $ACTIONLINT_VERSION into $tools_bin"
    (cd "$tools_bin" && GOBIN="$tools_bin" go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION") \
      || fail "go install of actionlint failed (see above); the Go module proxy must be reachable"
  fi
  # Rebuilt whenever its source changes: the stamp is the hash of the sources it was built from.
  stamp="$(cat "$repo/scripts/compose-check/go.mod" "$repo/scripts/compose-check/go.sum" "$repo/scripts/compose-check/main.go" | sha256sum | cut -d' ' -f1)"
  if [ -x "$tools_bin/compose-check" ] && [ "$(cat "$tools_bin/compose-check.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "compose-check: present in $tools_bin"
  else
    say "building compose-check (compose-go) into $tools_bin"
    (cd "$repo/scripts/compose-check" && go build -trimpath -ldflags "-s -w" -o "$tools_bin/compose-check" .) \
      || fail "go build of scripts/compose-check failed (see above); the Go module proxy must be reachable"
    printf '%s\n' "$stamp" >"$tools_bin/compose-check.stamp"
  fi
  # versitygw (Versity's S3 gateway, Apache-2.0) serves a directory over the S3 API: the s3:// fleet backend's tests
  # start it on 127.0.0.1 (test/harness/s3.ts). Built from its Go module, cached like the Pulumi CLI.
  if [ -x "$tools_bin/versitygw" ] && [ "$(cat "$tools_bin/versitygw.version" 2>/dev/null)" = "$VERSITYGW_VERSION" ]; then
    say "versitygw $VERSITYGW_VERSION: present in $tools_bin"
  else
    say "building versitygw $VERSITYGW_VERSION into $tools_bin (a few minutes on 2 cores; cached afterwards)"
    (cd "$tools_bin" && GOBIN="$tools_bin" go install -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION") \
      || fail "go install of versitygw failed (see above); the Go module proxy must be reachable"
    printf '%s\n' "$VERSITYGW_VERSION" >"$tools_bin/versitygw.version"
  fi
else
  say "note: no Go toolchain: the workflow and compose checks of \`npm test\` need actionlint and compose-check."
  say "      The s3:// backend's test needs versitygw, built the same way."
  say "      Install Go (https://go.dev/dl/) and run \`npm run setup\` again; it builds them into $tools_bin."
fi

# --- The Pulumi CLI -----------------------------------------------------------------------------------------------
version_of() { "$1" version 2>/dev/null | sed -n 's/^v\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n1; }
at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

write_dynamic_provider_launcher() {
  # Pulumi runs dynamic providers (the IONOS adapter) through this launcher; the official distribution ships one
  # beside the CLI, a CLI built from Go modules does not. It starts the program's own @pulumi/pulumi provider host.
  # Like the official one, it resolves @pulumi/pulumi from the program's directory upwards: the engine starts it in
  # the folder of the project's `main` (infra/), below the project's node_modules.
  local launcher="$pulumi_bin/pulumi-resource-pulumi-nodejs"
  local script
  script=$(printf '%s\n' '#!/bin/sh' \
    "provider=\$(node -e \"process.stdout.write(require.resolve('@pulumi/pulumi/cmd/dynamic-provider'))\") || exit 1" \
    'exec node "$provider" "$@"')
  [ -x "$launcher" ] && [ "$(cat "$launcher")" = "$script" ] && return
  printf '%s\n' "$script" >"$launcher"
  chmod +x "$launcher"
  say "wrote $launcher"
}

build_from_go_modules() {
  local build="$pulumi_root/build-v$PULUMI_VERSION"
  mkdir -p "$build" "$pulumi_bin"
  cp "$repo/scripts/pulumi-cli/go.mod" "$repo/scripts/pulumi-cli/go.sum" "$build/"
  say "building the Pulumi CLI v$PULUMI_VERSION from Go modules in $build (several minutes on 2 cores; cached afterwards)"
  (cd "$build" && go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
    -o "$pulumi_bin/pulumi.partial" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi) \
    || fail "go build of the Pulumi CLI failed (see above); the Go module proxy must be reachable"
  mv "$pulumi_bin/pulumi.partial" "$pulumi_bin/pulumi"
}

build_language_host() {
  # pulumi-language-nodejs has no module tags: it is required at the pseudo-version of the release commit.
  # Only `pulumi preview/up` of a local program needs it; the Automation API's inline programs do not.
  local build="$pulumi_root/build-language-nodejs-v$PULUMI_VERSION"
  local module="github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3"
  local pseudo="v3.0.0-20260624180030-dc7edd58bc13"
  mkdir -p "$build"
  printf 'module confscale.dev/toolchain/pulumi-language-nodejs\n\ngo 1.25.11\n\nrequire %s %s\n\nreplace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e\n' \
    "$module" "$pseudo" >"$build/go.mod"
  if (cd "$build" && go mod download "$module" >/dev/null 2>&1 && GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
      -o "$pulumi_bin/pulumi-language-nodejs" "$module" >/dev/null 2>&1); then
    say "built pulumi-language-nodejs"
  else
    say "note: pulumi-language-nodejs $pseudo is not served by this machine's Go module proxy."
    say "      Local-program commands (\`pulumi preview\` in this directory) need it: install the official Pulumi CLI"
    say "      (https://www.pulumi.com/docs/install/). \`npm run preview\`, the scaler and the tests run programs inline and do not."
  fi
}

cached_version=""
[ -x "$pulumi_bin/pulumi" ] && cached_version="$(version_of "$pulumi_bin/pulumi")"
path_pulumi="$(command -v pulumi || true)"
path_version=""
[ -n "$path_pulumi" ] && [ "$path_pulumi" != "$pulumi_bin/pulumi" ] && path_version="$(version_of "$path_pulumi")"

if [ "$cached_version" = "$PULUMI_VERSION" ]; then
  say "pulumi v$cached_version: present in $pulumi_bin"
elif [ -n "$path_version" ] && at_least "$path_version" "$PULUMI_VERSION"; then
  say "pulumi v$path_version: present on PATH at $path_pulumi"
elif command -v go >/dev/null 2>&1; then
  build_from_go_modules
  say "pulumi $("$pulumi_bin/pulumi" version): built into $pulumi_bin"
elif command -v curl >/dev/null 2>&1; then
  say "no Go toolchain: installing Pulumi v$PULUMI_VERSION with the official installer into $pulumi_root"
  curl -fsSL https://get.pulumi.com | sh -s -- --version "$PULUMI_VERSION" --install-root "$pulumi_root" --no-edit-path \
    || fail "the official Pulumi installer failed: see https://www.pulumi.com/docs/install/"
else
  fail "no Pulumi CLI >= $PULUMI_VERSION, no Go toolchain and no curl: install Pulumi (https://www.pulumi.com/docs/install/) or Go (https://go.dev/dl/)"
fi

if [ -x "$pulumi_bin/pulumi" ]; then
  write_dynamic_provider_launcher
  if [ ! -x "$pulumi_bin/pulumi-language-nodejs" ] && ! command -v pulumi-language-nodejs >/dev/null 2>&1 && command -v go >/dev/null 2>&1; then
    build_language_host
  fi
fi

command -v node >/dev/null 2>&1 || fail "node is missing: install Node.js 20 or newer"
[ -d "$repo/node_modules/@pulumi/pulumi" ] || fail "dependencies are not installed: run \`npm ci\` first"
say "ready (the scaler, tests and scripts find the CLI in $pulumi_bin; add it to PATH to run \`pulumi\` by hand)"
