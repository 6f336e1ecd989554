# shellcheck shell=bash
# Helpers the benchmarks share (sourced): the operator's processes as the host sees them.
#
# The testbed node is this machine, so the operator containers' processes are visible in the
# host pid namespace: RSS is VmRSS from /proc/<pid>/status, CPU is utime+stime from
# /proc/<pid>/stat over a window. Each figure is the median of SAMPLES windows of WINDOW seconds.

SAMPLES=${SAMPLES:-7}
WINDOW=${WINDOW:-10}
OPERATOR_NS=${SAKILA_NAMESPACE:-sakila-system}
LEASE=${SAKILA_LEASE:-sakila}
HZ=$(getconf CLK_TCK)

# pid_of POD: the host pid of the operator container's process.
pid_of() {
	local id
	id=$(kubectl -n "$OPERATOR_NS" get pod "$1" -o jsonpath='{.status.containerStatuses[0].containerID}')
	crictl inspect "${id#containerd://}" | jq -r '.info.pid'
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# utime + stime in clock ticks (fields 14 and 15; the comm field has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# leader_pod: the operator pod that holds the leader lease.
leader_pod() { kubectl -n "$OPERATOR_NS" get lease "$LEASE" -o jsonpath='{.spec.holderIdentity}'; }

# sample_pod POD: prints "RSS_KIB MILLICORES RSS_SAMPLES...", medians of SAMPLES windows.
sample_pod() {
	local pid t0 t1 i rss_samples=() cpu_samples=()
	pid=$(pid_of "$1")
	for ((i = 0; i < SAMPLES; i++)); do
		t0=$(cpu_ticks "$pid")
		sleep "$WINDOW"
		t1=$(cpu_ticks "$pid")
		rss_samples+=("$(rss_kib "$pid")")
		# millicores = ticks / HZ / WINDOW * 1000
		cpu_samples+=("$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v w="$WINDOW" 'BEGIN {printf "%.2f", d / hz / w * 1000}')")
	done
	echo "$(printf '%s\n' "${rss_samples[@]}" | median) $(printf '%s\n' "${cpu_samples[@]}" | median) ${rss_samples[*]}"
}

# measure LABEL: samples the leader and the standby; prints one line per pod.
measure() {
	local label=$1 leader pod role rss cpu samples
	leader=$(leader_pod)
	# Running pods only: a pod of an earlier rollout may still be terminating.
	for pod in $(kubectl -n "$OPERATOR_NS" get pods -l app.kubernetes.io/name=sakila-operator \
		--field-selector=status.phase=Running -o json |
		jq -r '.items[] | select(.metadata.deletionTimestamp == null) | .metadata.name'); do
		role=standby
		[[ $pod == "$leader" ]] && role=leader
		read -r rss cpu samples < <(sample_pod "$pod")
		printf '%-22s %-8s %-40s RSS %6.1f MiB  CPU %6.2f millicores  (median of %d x %ds; RSS samples KiB: %s)\n' \
			"$label" "$role" "$pod" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$cpu" "$SAMPLES" "$WINDOW" \
			"$samples"
	done
}

# wait_no_clusters: clusters of earlier test runs may still be going away with their namespaces.
wait_no_clusters() {
	local i existing=0
	for ((i = 0; i < 36; i++)); do
		existing=$(kubectl get mysqlclusters -A --no-headers 2>/dev/null | wc -l)
		((existing == 0)) && break
		sleep 5
	done
	echo "$existing"
}
