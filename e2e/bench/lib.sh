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

# api_requests LABEL SECONDS: the requests the operator's service accounts made in the next SECONDS,
# as the API server saw them: its audit log (e2e/testbed.d/config/audit-policy.yaml, which logs
# every service account outside kube-system). Prints the rate by verb, the writes per minute, and
# each written resource, so a write at rest shows what it was. The leader lease's renewals are
# writes of the operator whatever the number of clusters: they are counted apart.
AUDIT_LOG=${AUDIT_LOG:-/var/log/sakila-testbed/audit.log}
api_requests() {
	local label=$1 seconds=$2 from to rotated
	if [[ ! -f $AUDIT_LOG ]]; then
		echo "API    $label: no audit log at $AUDIT_LOG (a testbed made before it: e2e/testbed restart kube-apiserver)"
		return 0
	fi
	from=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
	sleep "$seconds"
	to=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
	# The rotated file too: a window may span a rotation.
	local logs=("$AUDIT_LOG")
	for rotated in "${AUDIT_LOG%.log}"-*.log; do [[ -f $rotated ]] && logs=("$rotated" "${logs[@]}"); done
	cat "${logs[@]}" | jq -r --arg ns "$OPERATOR_NS" \
		--arg from "$from" --arg to "$to" --arg lease "$LEASE" '
		select(.user.username | startswith("system:serviceaccount:" + $ns + ":"))
		| select(.requestReceivedTimestamp >= $from and .requestReceivedTimestamp < $to)
		| [.verb, (.objectRef.resource // "-"), (if .objectRef.resource == "leases" and .objectRef.name == $lease then "lease" else "other" end)]
		| @tsv' | awk -v label="$label" -v s="$seconds" -F'\t' '
		{ by_verb[$1]++; total++
		  if ($1 != "get" && $1 != "list" && $1 != "watch") {
			if ($3 == "lease") lease++; else { writes++; written[$1 " " $2]++ } } }
		END {
			line = ""
			for (v in by_verb) line = line sprintf(" %s %.2f/s", v, by_verb[v] / s)
			printf "API    %-22s requests by the operator over %d s: %.2f/s (%s ); writes per minute: %.1f besides %.1f leader-lease renewals\n",
				label, s, total / s, line == "" ? " none" : line, writes * 60 / s, lease * 60 / s
			for (w in written) printf "API    %-22s   written: %s x%d\n", label, w, written[w]
		}'
}

# machine LABEL SECONDS: what the whole machine spends over the next SECONDS, from /proc/stat: CPU
# busy in millicores (everything but idle and iowait, over all cores) and processes started per
# second. The testbed node is this machine, so this is what its pods cost together, the kubelet's
# exec probes included (each one starts runc, a shell and a client); a pod's own cgroup does not
# see those.
machine() {
	local label=$1 seconds=$2 before after
	before=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9} /^processes/ {print $2}' /proc/stat | xargs)
	sleep "$seconds"
	after=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9} /^processes/ {print $2}' /proc/stat | xargs)
	awk -v b="$before" -v a="$after" -v s="$seconds" -v hz="$HZ" -v label="$label" 'BEGIN {
		split(b, x, " "); split(a, y, " ")
		printf "HOST   %-22s over %d s: CPU busy %.0f millicores of %.0f, %.1f processes started/s, load %s\n",
			label, s, (y[1] - x[1]) / hz / s * 1000, (y[2] - x[2]) / hz / s * 1000, (y[3] - x[3]) / s,
			load()
	}
	function load(   l) { getline l < "/proc/loadavg"; split(l, f, " "); return f[1] }'
}
