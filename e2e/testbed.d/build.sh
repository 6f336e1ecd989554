# shellcheck shell=bash
# Build functions for e2e/testbed, sourced (not executed). Every binary is built
# from the Go module proxy into /var/cache/sakila/bin/<name>-<version>/ and
# reused when that directory holds a complete build (a `.done` marker written
# last, so an interrupted build is redone, never half-used).
# Expects: versions.env sourced, TESTBED_D set, log/die helpers from e2e/testbed.

CACHE_ROOT=${SAKILA_CACHE:-/var/cache/sakila}
export GOCACHE=$CACHE_ROOT/go-build           # shared: a version bump recompiles only what changed
export GOMODCACHE=$CACHE_ROOT/go-mod
export GOFLAGS=-mod=mod
export CGO_ENABLED=0                          # static binaries; kubelet needs no cgo
export GOTOOLCHAIN=local                      # never fetch a toolchain from outside
export GOPATH=$CACHE_ROOT/gopath

go_bin() {
  command -v go >/dev/null 2>&1 && { command -v go; return; }
  [ -x /usr/local/go/bin/go ] && { echo /usr/local/go/bin/go; return; }
  die "no Go toolchain found (need go >= 1.25 to build Kubernetes 1.35)"
}

# kube_ldflags: make the binaries report the real release. The apiserver's
# /version feeds Helm's kubeVersion checks, and the kubelet/kubectl skew checks.
kube_ldflags() {
  local v=$KUBERNETES_VERSION minor
  minor=${v#v1.}; minor=${minor%%.*}
  local f="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f="$f -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    f="$f -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$f"
}

# build_kube: one multicall binary from testbed.d/kube/main.go, plus symlinks.
build_kube() {
  local out=$CACHE_ROOT/bin/kubernetes-$KUBERNETES_VERSION
  [ -f "$out/.done" ] && return 0
  local src=$CACHE_ROOT/src/kubernetes-$KUBERNETES_VERSION go; go=$(go_bin)
  rm -rf "$src" "$out"; mkdir -p "$src" "$out"
  cp "$TESTBED_D/kube/main.go" "$src/"
  # k8s.io/kubernetes points its staging modules at ./staging with replace
  # lines, which do not apply to a dependent module: pin each one to the
  # matching published v0.x version instead.
  local mods
  mods=$(staging_modules)
  {
    echo "module sakila.local/testbed/kube"
    echo
    echo "go 1.25.0"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    for m in $mods; do echo "	$m => $m $KUBERNETES_STAGING_VERSION"; done
    echo ")"
  } > "$src/go.mod"
  (cd "$src" && "$go" mod tidy && \
   "$go" build -trimpath -ldflags "$(kube_ldflags)" -o "$out/kube" .) || return 1
  local n
  for n in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    ln -sf kube "$out/$n"
  done
  touch "$out/.done"
}

# The staging module list comes from k8s.io/kubernetes' own go.mod (its
# `=> ./staging/...` replace lines), so it follows the pinned release.
staging_modules() {
  local go; go=$(go_bin)
  local gomod
  gomod=$("$go" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || die "cannot download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go proxy"
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"
}

build_etcd() {
  local out=$CACHE_ROOT/bin/etcd-$ETCD_VERSION
  [ -f "$out/.done" ] && return 0
  local src=$CACHE_ROOT/src/etcd-$ETCD_VERSION go; go=$(go_bin)
  rm -rf "$src" "$out"; mkdir -p "$src" "$out"
  cp "$TESTBED_D/etcd/main.go" "$src/"
  {
    echo "module sakila.local/testbed/etcd"
    echo
    echo "go 1.24"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo
    # Same reason as Kubernetes: etcd's server module replaces its siblings
    # with ../ paths; pin them to the same release.
    echo "replace ("
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
      echo "	go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"
    done
    echo ")"
  } > "$src/go.mod"
  (cd "$src" && "$go" mod tidy && \
   "$go" build -trimpath -ldflags "-s -w" -o "$out/etcd" .) || return 1
  touch "$out/.done"
}

# Helm and crictl have no replace directives: plain `go install` works.
build_helm() {
  local out=$CACHE_ROOT/bin/helm-$HELM_VERSION
  [ -f "$out/.done" ] && return 0
  local go; go=$(go_bin); rm -rf "$out"; mkdir -p "$out"
  local major=${HELM_VERSION%%.*}
  GOBIN=$out "$go" install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/$major/cmd/helm@$HELM_VERSION" || return 1
  touch "$out/.done"
}

build_crictl() {
  local out=$CACHE_ROOT/bin/crictl-$CRI_TOOLS_VERSION
  [ -f "$out/.done" ] && return 0
  local go; go=$(go_bin); rm -rf "$out"; mkdir -p "$out"
  GOBIN=$out "$go" install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION" || return 1
  touch "$out/.done"
}
