# shellcheck shell=bash
# Variables set in subshells are read through render() (placeholders in testbed.d).
# shellcheck disable=SC2034
# Worker nodes for the testbed, sourced by e2e/testbed. A worker is what a machine of a real
# cluster is, made of host processes: its own network namespace (address, pod range, iptables),
# its own containerd, kubelet and kube-proxy, its own cgroup subtree and local volumes, joined
# to the testbed's control plane. The first node (sakila-node, in the host's namespace) stays:
# it is the control-plane node and runs the add-ons.
#
# Worker W = sakila-worker-I (I from 1 to 9):
#   network  namespace sakila-worker-I; link skwI on the host (10.201.I.1/24) to eth0 inside
#            (10.201.I.2/24, the node's address); its pod range is the one the controller
#            manager gives it, routed by the host through skwI
#   files    $STATE/nodes/W (configs, containerd's root, the kubelet's root, CNI, volumes);
#            $RUN/nodes/W (containerd's and runc's state, pid files: what a power-off loses)
#   cgroups  /sakila-worker-I in each hierarchy (the kubelet's cgroupRoot)
#   labels   topology.kubernetes.io/zone=zone-I, testbed.sakila.dev/worker=true
#
# A stopped worker is a powered-off machine: cut off, then every process of it killed at once,
# its runtime state gone. A partitioned worker keeps running, cut off. Cut off means every
# packet to or from its link is dropped on the host (chain SAKILA-NODE-CUT), as a dead machine or
# a broken network drops them: its peers see timeouts, never a refusal. (Taking the link down
# would not do: the kernel drops the routes through it, and the pods' traffic to its range would
# then meet the forwarding fence's REJECT, a refusal that tells the operator at once that
# nothing listens.)
# Expects everything e2e/testbed defines.

WORKER_PREFIX=sakila-worker-
WORKER_LABEL=testbed.sakila.dev/worker

worker_index() {
  local w=$1
  [[ $w =~ ^${WORKER_PREFIX}([1-9])$ ]] || die "no such worker name: $w (${WORKER_PREFIX}1 to ${WORKER_PREFIX}9)"
  echo "${BASH_REMATCH[1]}"
}
worker_netns() { echo "$1"; }
worker_link() { echo "skw$(worker_index "$1")"; }
worker_ip() { echo "10.201.$(worker_index "$1").2"; }
worker_host_ip() { echo "10.201.$(worker_index "$1").1"; }
worker_state() { echo "$STATE/nodes/$1"; }
worker_run() { echo "$RUN/nodes/$1"; }
worker_sock() { echo "$RUN/nodes/$1/containerd/containerd.sock"; }
# in_worker W CMD...: CMD in the worker's network namespace only (its mounts are the host's, so
# the kubelet's volume mounts are the ones containerd sees).
in_worker() { local w=$1; shift; nsenter --net="/run/netns/$(worker_netns "$w")" -- "$@"; }

# The workers that exist (made by `node add` and not removed), in order.
workers() {
  local d
  for d in "$STATE"/nodes/"$WORKER_PREFIX"*; do [ -d "$d" ] && basename "$d"; done
  return 0
}

worker_network_up() {
  local w=$1 ns link ip host_ip
  ns=$(worker_netns "$w"); link=$(worker_link "$w"); ip=$(worker_ip "$w"); host_ip=$(worker_host_ip "$w")
  [ -e "/run/netns/$ns" ] || ip netns add "$ns"
  if ! ip link show "$link" >/dev/null 2>&1; then
    ip link add "$link" type veth peer name eth0 netns "$ns"
  fi
  ip addr replace "$host_ip/24" dev "$link"
  ip link set "$link" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route replace default via "$host_ip" dev eth0
  # The node routes between its pods' bridge and its link; the bridge's traffic goes through
  # iptables so that a pod reaches a Service backed by a pod of the same node.
  in_worker "$w" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward
    if [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]; then echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables; fi'
}

# worker_route W: the host's route to the worker's pods (once the controller manager gave it a
# range; also after a heal, as a link going down can take the route with it).
worker_route() {
  local w=$1 cidr
  cidr=$(kubectl get node "$w" -o jsonpath='{.spec.podCIDR}' 2>/dev/null) || return 1
  [ -n "$cidr" ] || return 1
  ip route replace "$cidr" via "$(worker_ip "$w")" dev "$(worker_link "$w")"
}

# Each cgroup v1 hierarchy gets the worker's root; cpuset needs its cpus and mems filled in.
worker_cgroups_up() {
  local w=$1 h
  for h in /sys/fs/cgroup/*/; do
    case $h in */unified/) continue ;; esac
    mkdir -p "$h$w"
    if [ -f "$h$w/cpuset.cpus" ]; then
      [ -n "$(cat "$h$w/cpuset.cpus")" ] || cat "${h}cpuset.cpus" > "$h$w/cpuset.cpus"
      [ -n "$(cat "$h$w/cpuset.mems")" ] || cat "${h}cpuset.mems" > "$h$w/cpuset.mems"
    fi
  done
}

worker_configs() {
  local w=$1 dir run
  local sock ip
  dir=$(worker_state "$w"); run=$(worker_run "$w"); sock=$(worker_sock "$w"); ip=$(worker_ip "$w")
  mkdir -p "$dir"/{cni/net.d,cni/ipam,kubelet,pod-logs,local-path} "$run" "$LOGDIR/nodes/$w"
  PAUSE_IMAGE=$(image_ref pause)
  (
    # The node's own paths in the same templates the control-plane node uses.
    STATE=$dir RUN=$run CONTAINERD_SOCK=$sock NODE_NAME=$w NODE_IP=$ip
    render "$TESTBED_D/config/containerd.toml" > "$dir/containerd.toml"
    render "$TESTBED_D/config/kubelet.yaml" > "$dir/kubelet.yaml"
    printf 'podLogsDir: %s\ncgroupRoot: /%s\n' "$dir/pod-logs" "$w" >> "$dir/kubelet.yaml"
    render "$TESTBED_D/config/kube-proxy.yaml" > "$dir/kube-proxy.yaml"
    printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' \
      "$CONTAINERD_SOCK" "$CONTAINERD_SOCK" > "$dir/crictl.yaml"
  )
  cp "$STATE/resolv.conf" "$dir/resolv.conf"
  cp "$STATE/kube-proxy.kubeconfig" "$dir/kube-proxy.kubeconfig"
  if [ ! -f "$dir/kubelet.kubeconfig" ]; then
    # shellcheck source=pki.sh
    . "$TESTBED_D/pki.sh"
    pki_cert "kubelet-$w" "system:node:$w" system:nodes
    pki_kubeconfig "nodes/$w/kubelet" "kubelet-$w"
  fi
}

# worker_cni W: the node's pod network, in its own range. Without it the kubelet reports the
# node not Ready, so no pod lands there before the route to its range exists.
worker_cni() {
  local w=$1 cidr dir
  dir=$(worker_state "$w")
  cidr=$(kubectl get node "$w" -o jsonpath='{.spec.podCIDR}')
  (
    STATE=$dir NODE_POD_CIDR=$cidr POD_GATEWAY=${cidr%.*/*}.1
    # Pod addresses are kept end to end between nodes, as on a real cluster's network.
    IP_MASQ=false
    render "$TESTBED_D/config/10-sakila.conflist" > "$dir/cni/net.d/10-sakila.conflist"
  )
  worker_route "$w"
}

worker_has_pod_cidr() { [ -n "$(kubectl get node "$1" -o jsonpath='{.spec.podCIDR}' 2>/dev/null)" ]; }
worker_ready() {
  kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

worker_start_processes() {
  local w=$1 dir sock ip zone
  dir=$(worker_state "$w"); sock=$(worker_sock "$w"); ip=$(worker_ip "$w")
  zone=zone-$(worker_index "$w")
  mkdir -p "$(worker_run "$w")" "$LOGDIR/nodes/$w"
  if ! alive "nodes/$w/containerd"; then
    start_proc "nodes/$w/containerd" nsenter --net="/run/netns/$(worker_netns "$w")" -- \
      /usr/bin/containerd --config "$dir/containerd.toml"
    wait_for "$w containerd" 60 ctr --address "$sock" version
  fi
  worker_load_images "$w"
  if ! alive "nodes/$w/kubelet"; then
    start_proc "nodes/$w/kubelet" nsenter --net="/run/netns/$(worker_netns "$w")" -- \
      "$KUBE_BIN/kubelet" --config="$dir/kubelet.yaml" --kubeconfig="$dir/kubelet.kubeconfig" \
      --hostname-override="$w" --node-ip="$ip" \
      --node-labels="topology.kubernetes.io/zone=$zone,$WORKER_LABEL=true" \
      --root-dir="$dir/kubelet" --cert-dir="$dir/kubelet/pki"
    wait_for "$w kubelet-healthz" 60 in_worker "$w" curl -sf http://127.0.0.1:10248/healthz
  fi
  wait_for "$w pod range" 60 worker_has_pod_cidr "$w"
  worker_cni "$w"
  if ! alive "nodes/$w/kube-proxy"; then
    start_proc "nodes/$w/kube-proxy" nsenter --net="/run/netns/$(worker_netns "$w")" -- \
      "$KUBE_BIN/kube-proxy" --config="$dir/kube-proxy.yaml"
    wait_for "$w kube-proxy-healthz" 60 in_worker "$w" curl -sf http://127.0.0.1:10256/healthz
  fi
  wait_for "node $w Ready" 180 worker_ready "$w"
}

# worker_load_images W: every image the control-plane node was given (load_image records
# them), so a pod runs on any node.
worker_load_images() {
  local w=$1 file
  [ -f "$STATE/images.loaded" ] || return 0
  while read -r file; do
    [ -f "$file" ] || continue
    (
      CONTAINERD_SOCK=$(worker_sock "$w") STATE=$(worker_state "$w")
      load_image "$file"
    ) || die "loading $file into $w failed"
  done < <(awk '!seen[$0]++' "$STATE/images.loaded")
}

cmd_node_add() {
  local w=$1 t0=$SECONDS
  worker_index "$w" >/dev/null
  fence_up
  worker_network_up "$w"
  # A worker of the same name left cut off (a test killed half-way) starts connected.
  worker_uncut "$w"
  worker_cgroups_up "$w"
  worker_configs "$w"
  worker_start_processes "$w"
  worker_check "$w"
  log "node $w up in $((SECONDS - t0))s"
}

# worker_check W: the checks `up` makes on the first node, made by a pod on W: the cluster's
# DNS (a Service whose pod is on another node) and a volume of the default StorageClass there.
worker_check() {
  local w=$1 ns=sakila-testbed-check-$1
  kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null 2>&1 || true
  HELPER_IMAGE=$(image_ref helper)
  render "$TESTBED_D/manifests/checks.yaml" | sed "s/namespace: sakila-testbed-check$/namespace: $ns/; s/name: sakila-testbed-check$/name: $ns/" \
    | sed "s|^  restartPolicy: Never$|  restartPolicy: Never\\n  nodeSelector: {kubernetes.io/hostname: $w}|" \
    | kubectl apply -f - >&2
  if ! kubectl -n "$ns" wait pod/check --for=jsonpath='{.status.phase}'=Succeeded --timeout=180s >&2; then
    kubectl -n "$ns" describe pod/check pvc/check >&2 || true
    kubectl -n "$ns" logs check >&2 || true
    die "check pod on $w failed: DNS or the volume does not work there"
  fi
  [ "$(kubectl -n "$ns" get pod check -o jsonpath='{.spec.nodeName}')" = "$w" ] || die "check pod did not run on $w"
  log "$w: DNS resolves through a Service; PVC bound and writable"
  kubectl delete namespace "$ns" --wait=false >&2
}

# worker_pids W: every process of the worker: its daemons, its shims and its containers.
worker_pids() {
  local w=$1 p args
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    args=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || continue
    case $args in *"$STATE/nodes/$w/"*|*"$RUN/nodes/$w/"*) echo "$p" ;; esac
  done
  local d
  for d in /sys/fs/cgroup/*/"$w"; do
    [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done
  return 0
}

# worker_kill W: all at once, with no grace (a power cut), until none is left: a shim that
# outlived its container's kill would otherwise report it and keep going.
worker_kill() {
  local w=$1 pids try
  for try in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(worker_pids "$w" | sort -u | tr '\n' ' ')
    [ -n "${pids// /}" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.2
  done
  rm -f "$(worker_run "$w")"/*.pid
}

# worker_unmount W: the pod network namespaces and volume mounts the worker's runtime made.
worker_unmount() {
  local w=$1 m
  for m in $(awk -v s="$STATE/nodes/$w" -v r="$RUN/nodes/$w" 'index($2, s "/") == 1 || index($2, r "/") == 1 || $2 == s || $2 == r {print $2}' /proc/self/mounts | sort -r); do
    m=$(printf '%b' "$m")
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

cmd_node_stop() {
  local w=$1
  # The cut first: a process killed while the network still works closes its connections, and
  # its peers would learn at once what a power cut never tells them.
  worker_cut "$w"
  worker_kill "$w"
  # What a power-off loses: the runtime's state in /run, the pods' namespaces.
  worker_unmount "$w"
  rm -rf --one-file-system "$(worker_run "$w")"
  log "node $w powered off (cut off, every process killed)"
}

cmd_node_start() {
  local w=$1 t0=$SECONDS
  worker_network_up "$w"
  worker_uncut "$w"
  worker_cgroups_up "$w"
  worker_start_processes "$w"
  log "node $w started and Ready in $((SECONDS - t0))s"
}

cmd_node_partition() {
  worker_cut "$1"
  log "node $1 partitioned (every packet of its link dropped; its processes run)"
}

cmd_node_heal() {
  worker_uncut "$1"
  log "node $1 healed"
}

CUT_CHAIN=SAKILA-NODE-CUT

# cut_chain_first: the cut chain is looked at before anything else on the host: INPUT and OUTPUT
# (the node and the control plane), FORWARD through SAKILA-FORWARD (pods), whose first rule
# jumps here (fence_up).
cut_chain_first() {
  iptables -w -N "$CUT_CHAIN" 2>/dev/null || true
  local c
  for c in INPUT OUTPUT; do
    while iptables -w -D "$c" -j "$CUT_CHAIN" 2>/dev/null; do :; done
    iptables -w -I "$c" 1 -j "$CUT_CHAIN"
  done
}

worker_cut() {
  local link
  link=$(worker_link "$1")
  cut_chain_first
  fence_up
  iptables -w -C "$CUT_CHAIN" -i "$link" -j DROP 2>/dev/null || iptables -w -A "$CUT_CHAIN" -i "$link" -j DROP
  iptables -w -C "$CUT_CHAIN" -o "$link" -j DROP 2>/dev/null || iptables -w -A "$CUT_CHAIN" -o "$link" -j DROP
}

worker_uncut() {
  local link
  link=$(worker_link "$1")
  while iptables -w -D "$CUT_CHAIN" -i "$link" -j DROP 2>/dev/null; do :; done
  while iptables -w -D "$CUT_CHAIN" -o "$link" -j DROP 2>/dev/null; do :; done
  return 0
}

cmd_node_remove() {
  local w=$1 h
  kubectl delete node "$w" --ignore-not-found --wait=false >&2 || true
  worker_kill "$w"
  worker_unmount "$w"
  # Deepest first: pod cgroups, then the worker's roots.
  for h in /sys/fs/cgroup/*/"$w"; do
    [ -d "$h" ] || continue
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  worker_uncut "$w"
  ip link del "$(worker_link "$w")" 2>/dev/null || true
  ip netns del "$(worker_netns "$w")" 2>/dev/null || true
  rm -rf --one-file-system "$(worker_state "$w")" "$(worker_run "$w")"
  log "node $w removed"
}

# cmd_workers N: exactly N workers, sakila-worker-1 to -N (each started if stopped).
cmd_workers() {
  local n=$1 i w
  [[ $n =~ ^[0-9]$ ]] || die "usage: testbed workers N (0 to 9)"
  for w in $(workers); do
    (( $(worker_index "$w") <= n )) || cmd_node_remove "$w"
  done
  for (( i = 1; i <= n; i++ )); do cmd_node_add "$WORKER_PREFIX$i"; done
  kubectl get nodes -L topology.kubernetes.io/zone >&2
}

# For `down`: whatever workers left once their processes are dead.
workers_network_down() {
  local ns l
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$WORKER_PREFIX" || true); do
    ip netns del "$ns" && log "deleted network namespace $ns"
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^skw[1-9]$' || true); do
    ip link del "$l" 2>/dev/null && log "deleted link $l" || true
  done
}

cmd_node() {
  local verb=${1:-} w=${2:-}
  [ -n "$w" ] || die "usage: testbed node add|remove|stop|start|partition|heal NODE"
  case $verb in
    add) cmd_node_add "$w" ;;
    remove) cmd_node_remove "$w" ;;
    stop|start|partition|heal)
      [ -d "$(worker_state "$w")" ] || die "no worker $w (add it first: testbed node add $w)"
      "cmd_node_$verb" "$w" ;;
    *) die "usage: testbed node add|remove|stop|start|partition|heal NODE" ;;
  esac
}
