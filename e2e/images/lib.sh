# shellcheck shell=bash
# Shared functions for e2e/images/build and tests/support/mysqld-chroot.
#
# Everything expensive is cached under $SAKILA_CACHE (outside the checkout) and
# keyed by version or content, so a warm call only checks that a file exists.
# Each cache entry is built in a temporary sibling and renamed into place, so an
# interrupted build never leaves a half-built entry that looks complete.

# Without this, a failure inside $(...) would not stop the caller.
shopt -s inherit_errexit

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$IMAGES_DIR/../.." && pwd)
SAKILA_CACHE=${SAKILA_CACHE:-/var/cache/sakila}
# Shared with the testbed's own Go builds on purpose: kubernetes and coredns
# compile many of the same packages.
export GOCACHE=${GOCACHE:-$SAKILA_CACHE/go-build}
# Same module cache as e2e/testbed, outside the user's ~/go so that a
# `go clean -modcache` elsewhere cannot pull sources away mid-build.
export GOMODCACHE=${GOMODCACHE:-$SAKILA_CACHE/go-mod}
# sid is the only Debian suite with MySQL 9.x; the host's configured mirror is
# the one that the package-registry rules of this machine let through.
DEBIAN_SUITE=${DEBIAN_SUITE:-sid}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

# need_tools CMD...: installs the Debian packages of the same names when
# missing. A fresh CI machine has only what the project's scripts install.
need_tools() {
	local c missing=()
	for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
	((${#missing[@]})) || return 0
	log "installing ${missing[*]} with apt-get"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}"; } >&2 || die "apt-get install ${missing[*]} failed"
}

load_versions() {
	local f="$REPO_ROOT/e2e/versions.env"
	[[ -f $f ]] || die "missing $f"
	# shellcheck disable=SC1090
	source "$f"
	: "${COREDNS_VERSION:?not set in $f}"
	: "${LOCAL_PATH_PROVISIONER_VERSION:?not set in $f}"
	: "${PAUSE_VERSION:?not set in $f}"
	: "${PROMETHEUS_VERSION:?not set in $f}"
	: "${VERSITYGW_VERSION:?not set in $f}"
}

# Serialises builds of one cache entry: the testbed may build images in
# parallel, and two debootstraps into the same directory would corrupt it.
with_lock() {
	local name=$1; shift
	mkdir -p "$SAKILA_CACHE/locks"
	(
		flock 9
		"$@"
	) 9>"$SAKILA_CACHE/locks/$name.lock"
}

# A fresh temporary directory next to DEST, so the final rename stays on one
# filesystem and is atomic.
tmp_beside() {
	local dest=$1
	local d
	mkdir -p "$(dirname "$dest")"
	d=$(mktemp -d "$(dirname "$dest")/.tmp.$(basename "$dest").XXXXXX")
	# mktemp's 0700 would become the mode of an image's / when the
	# directory is a rootfs.
	chmod 0755 "$d"
	echo "$d"
}

# Removes a directory that may contain a chroot with mounts left from a killed
# build: unmounting first keeps rm -rf from walking into the host's /proc.
rm_tree() {
	local d=$1 m
	[[ -e $d ]] || return 0
	while read -r m; do umount -l "$m" 2>/dev/null || true; done \
		< <(awk -v d="$d" 'index($2, d"/") == 1 {print $2}' /proc/self/mounts | sort -r)
	rm -rf --one-file-system "$d"
}

sha_short() { sha256sum "$@" | cut -c1-12; }

# sha_short of a cached binary, remembered beside it: hashing the 75 MB
# coredns binary on every call would cost a second under load.
bin_key() {
	local f=$1
	if [[ -s $f.sha256 && $f.sha256 -nt $f ]]; then
		cat "$f.sha256"
	else
		sha_short "$f" | tee "$f.sha256.$$"
		mv "$f.sha256.$$" "$f.sha256"
	fi
}

# ---------------------------------------------------------------------------
# Go binaries

# go_binary MODULE VERSION BINNAME [TAGS] -> prints the cached binary's path
# (TAGS: comma-separated build tags, part of the cache key).
go_binary() {
	local module=$1 version=$2 bin=$3 tags=${4:-}
	local dest="$SAKILA_CACHE/bin/$bin-$version${tags:+-${tags//,/-}}"
	if [[ ! -x $dest/$bin ]]; then
		with_lock "bin-$bin-$version" _go_binary_build "$module" "$version" "$bin" "$dest" "$tags"
	fi
	echo "$dest/$bin"
}

_go_binary_build() {
	local module=$1 version=$2 bin=$3 dest=$4 tags=$5 tmp t0=$SECONDS
	[[ -x $dest/$bin ]] && return 0
	tmp=$(tmp_beside "$dest")
	log "go install ${tags:+-tags $tags }$module@$version (static, CGO_ENABLED=0) ..."
	# GOFLAGS from the host environment (e.g. -mod=vendor) would break
	# `go install pkg@version`; -trimpath keeps the binary independent of
	# the cache path.
	if ! GOBIN="$tmp" CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=local \
		go install -ldflags='-s -w' ${tags:+-tags "$tags"} "$module@$version" >&2; then
		rm -rf "$tmp"
		die "go install $module@$version failed"
	fi
	[[ -x $tmp/$bin ]] || { rm -rf "$tmp"; die "go install produced no $bin"; }
	rm_tree "$dest"
	mv "$tmp" "$dest"
	log "built $dest/$bin in $((SECONDS - t0)) s"
}

# The pause binary, keyed by its source's hash.
pause_binary() {
	local src="$IMAGES_DIR/pause/pause.c" hash dest
	hash=$(sha_short "$src")
	dest="$SAKILA_CACHE/bin/pause-$PAUSE_VERSION-$hash"
	if [[ ! -x $dest/pause ]]; then
		need_tools gcc
		with_lock "bin-pause" _pause_build "$src" "$dest"
	fi
	echo "$dest/pause"
}

_pause_build() {
	local src=$1 dest=$2 tmp
	[[ -x $dest/pause ]] && return 0
	tmp=$(tmp_beside "$dest")
	log "gcc -static $src"
	gcc -Os -static -Wall -DVERSION="$PAUSE_VERSION" -o "$tmp/pause" "$src" >&2 \
		|| { rm -rf "$tmp"; die "compiling pause failed"; }
	strip "$tmp/pause"
	rm_tree "$dest"
	mv "$tmp" "$dest"
}

# ---------------------------------------------------------------------------
# Debian root filesystems

# Bump when _base_rootfs_build changes what goes into the base, so caches on
# every machine rebuild it.
BASE_RECIPE=2

# The minbase sid rootfs shared by helper, operator and (copied) mysql. Keyed by
# suite and recipe; otherwise it stays as first built (sid moves daily, but a
# reproducible testbed matters more than the newest sid; delete
# $SAKILA_CACHE/rootfs to refresh).
base_rootfs() {
	local key dest
	key="$DEBIAN_SUITE-r$BASE_RECIPE"
	dest="$SAKILA_CACHE/rootfs/base-$key"
	if [[ ! -f $dest/.complete ]]; then
		with_lock "rootfs-base" _base_rootfs_build "$dest"
	fi
	echo "$dest"
}

_base_rootfs_build() {
	local dest=$1 tmp t0=$SECONDS
	[[ -f $dest/.complete ]] && return 0
	need_tools debootstrap
	tmp=$(tmp_beside "$dest")
	log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR (log: $tmp.log) ..."
	if ! debootstrap --variant=minbase "$DEBIAN_SUITE" "$tmp" "$DEBIAN_MIRROR" > "$tmp.log" 2>&1; then
		tail -n 40 "$tmp.log" >&2
		rm_tree "$tmp"
		die "debootstrap failed"
	fi
	rm -f "$tmp.log"
	# The mirror's Release file can be past its Valid-Until date; apt inside
	# the chroot must accept it the way debootstrap did.
	echo 'Acquire::Check-Valid-Until "false";' > "$tmp/etc/apt/apt.conf.d/99sakila-no-valid-until"
	# Nothing in these images needs documentation; dpkg would otherwise
	# reinstall it with every later package (mysql's docs are several MB).
	cat > "$tmp/etc/dpkg/dpkg.cfg.d/99sakila-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
	# debootstrap copies these from the build host; the container runtime
	# provides its own.
	: > "$tmp/etc/resolv.conf"
	echo localhost > "$tmp/etc/hostname"
	slim_rootfs "$tmp"
	date -u +%FT%TZ > "$tmp/.complete"
	rm_tree "$dest"
	mv "$tmp" "$dest"
	log "base rootfs $dest ready in $((SECONDS - t0)) s ($(du -sh "$dest" | cut -f1))"
}

# Drops what a running container never reads. apt lists are fetched again by
# any later apt-get update, so removing them costs nothing.
slim_rootfs() {
	local r=$1
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
		"$r"/var/log/apt/* "$r"/var/log/dpkg.log "$r"/var/log/bootstrap.log \
		"$r"/var/log/alternatives.log
	find "$r/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian
	find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
	find "$r" -xdev -name '__pycache__' -prune -exec rm -rf {} + 2>/dev/null || true
}

# cp -a of a whole tree, keeping hard links and ownership; reflinks where the
# filesystem has them.
copy_tree() {
	cp -a --reflink=auto "$1" "$2"
}

# Runs a command inside ROOTFS with /proc, /sys and /dev available, and undoes
# the mounts whatever happens.
in_chroot() {
	local r=$1; shift
	mount -t proc proc "$r/proc"
	mount --rbind /sys "$r/sys"; mount --make-rslave "$r/sys"
	mount --rbind /dev "$r/dev"; mount --make-rslave "$r/dev"
	cp -L /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
	local rc=0
	chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@" >&2 || rc=$?
	umount -R -l "$r/dev" "$r/sys" "$r/proc" 2>/dev/null || true
	# resolv.conf of the build host has no business in an image.
	: > "$r/etc/resolv.conf"
	return $rc
}

# ---------------------------------------------------------------------------
# OCI image layouts and archives
#
# An image is built in an OCI layout directory with umoci (one `umoci insert`
# = one layer), then tarred: a tar of an OCI layout is what
# `ctr images import` reads.

# layout_new DIR: an empty image "img" in a new layout.
layout_new() {
	umoci init --layout "$1" >&2 && umoci new --image "$1:img" >&2
}

# layout_from BASE DIR: a copy of a cached layout to add layers to. Blobs are
# content-addressed and umoci never rewrites one, so hard links are safe; the
# mutable files are copied.
layout_from() {
	mkdir -p "$2"
	cp -al "$1/blobs" "$2/blobs"
	cp "$1/index.json" "$1/oci-layout" "$2/"
}

# layer_insert DIR SRC TARGET
layer_insert() {
	umoci insert --image "$1:img" --history.created_by "e2e/images/build: insert $3" "$2" "$3" >&2
}

# layout_config DIR UMOCI_CONFIG_ARGS...
layout_config() {
	local d=$1; shift
	umoci config --image "$d:img" --os linux --architecture amd64 \
		--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--created 1970-01-01T00:00:00Z --no-history "$@" >&2
}

# layout_archive DIR REF DEST: names the image REF and writes the archive.
# umoci tags may contain no '/' or ':', so the full reference is written into
# the index afterwards: containerd's importer takes the image name from
# org.opencontainers.image.ref.name when it is a full reference (newer
# versions from io.containerd.image.name), so no --base-name is needed.
layout_archive() {
	local d=$1 ref=$2 dest=$3 tmp
	umoci gc --layout "$d" >&2 || return 1
	jq --arg ref "$ref" '.manifests |= map(.annotations = {
			"org.opencontainers.image.ref.name": $ref,
			"io.containerd.image.name": $ref })' "$d/index.json" > "$d/index.json.new" &&
		mv "$d/index.json.new" "$d/index.json" || return 1
	mkdir -p "$(dirname "$dest")"
	tmp="$dest.tmp.$$"
	tar -C "$d" -cf "$tmp" oci-layout index.json blobs && mv "$tmp" "$dest"
}

# ---------------------------------------------------------------------------
# MySQL

# Bump when _mysql_rootfs_build changes what goes into the MySQL rootfs.
MYSQL_RECIPE=2

mysql_rootfs_path() { echo "$SAKILA_CACHE/rootfs/mysql-$DEBIAN_SUITE-r$BASE_RECIPE.$MYSQL_RECIPE"; }

# The MySQL rootfs, laid out like the official mysql image. Its version is
# whatever sid had when it was first built, recorded in .mysql-version.
mysql_rootfs() {
	local dest base
	dest=$(mysql_rootfs_path)
	if [[ ! -f $dest/.complete ]]; then
		base=$(base_rootfs)
		with_lock "rootfs-mysql" _mysql_rootfs_build "$base" "$dest"
	fi
	echo "$dest"
}

_mysql_rootfs_build() {
	local base=$1 dest=$2 tmp ver t0=$SECONDS
	[[ -f $dest/.complete ]] && return 0
	tmp=$(tmp_beside "$dest")
	rmdir "$tmp"
	copy_tree "$base" "$tmp"
	rm -f "$tmp/.complete"
	log "installing mysql-server-core and mysql-client-core in $tmp (log: $tmp.log) ..."
	# uid/gid 999 as in the official image, created before the packages so
	# that nothing they install picks 999 for itself.
	if ! in_chroot "$tmp" sh -euc '
		groupadd --system --gid 999 mysql
		useradd --system --uid 999 --gid 999 --home-dir /var/lib/mysql --no-create-home --shell /usr/sbin/nologin mysql
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends mysql-server-core mysql-client-core
		apt-get clean
		# perl (50 MB) is there only for mysqld_multi and mysqldumpslow,
		# which nothing here runs.
		dpkg --purge --force-depends perl perl-modules-5.42 libperl5.42
	' > "$tmp.log" 2>&1; then
		tail -n 40 "$tmp.log" >&2
		rm_tree "$tmp"
		die "installing MySQL failed"
	fi
	rm -f "$tmp.log"
	# shellcheck disable=SC2016 # a dpkg-query format, not shell
	ver=$(chroot "$tmp" dpkg-query -W -f '${Version}' mysql-server-core) || die "mysql-server-core not installed"
	# Debian version 9.7.4-1 (maybe with an epoch) -> upstream 9.7.4.
	ver=${ver#*:}; ver=${ver%-*}
	[[ $ver =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "unexpected MySQL version '$ver'"

	# Paths and modes of the official image (its Dockerfile makes both 1777),
	# so that the operator needs no special case for this image.
	install -d -o 999 -g 999 -m 1777 "$tmp/var/lib/mysql" "$tmp/run/mysqld"
	install -d -o 999 -g 999 -m 0750 "$tmp/var/lib/mysql-files"
	install -d -m 0755 "$tmp/etc/mysql/conf.d"
	# mysqld reads /etc/my.cnf first and /etc/mysql/my.cnf second; the
	# official image keeps its defaults in /etc/my.cnf, so do we. Packages of
	# sid may own /etc/mysql/my.cnf through alternatives: leave that alone.
	cat > "$tmp/etc/my.cnf" <<'CNF'
# Defaults of the official mysql image; the operator's own settings come in
# through /etc/mysql/conf.d/ or the command line.
[mysqld]
host-cache-size=0
skip-name-resolve
datadir=/var/lib/mysql
socket=/var/run/mysqld/mysqld.sock
secure-file-priv=/var/lib/mysql-files
user=mysql
pid-file=/var/run/mysqld/mysqld.pid

[client]
socket=/var/run/mysqld/mysqld.sock

!includedir /etc/mysql/conf.d/
CNF
	# Tools that nothing of Sakila runs; each is a 7 MB static copy of the
	# client library. Kept: mysqld, mysql, mysqladmin, mysqldump,
	# mysqlbinlog, mysqlcheck, mysql_tzinfo_to_sql, my_print_defaults,
	# perror, innochecksum, ibd2sdi.
	( cd "$tmp/usr/bin" && rm -f myisamchk myisamlog myisampack myisam_ftdump \
		mysqlslap mysqlshow mysqlimport mysql_secure_installation \
		mysql_config_editor mysql_migrate_keyring mysqld_multi mysqldumpslow )
	# Error messages in 23 other languages; lc_messages stays en_US.
	find "$tmp/usr/share/mysql" -mindepth 2 -name errmsg.sys ! -path '*/english/*' -delete
	find "$tmp/usr/share/mysql" -mindepth 1 -type d -empty -delete
	slim_rootfs "$tmp"
	# Tests write nothing here: mysqld-chroot mounts over these.
	rm -rf "${tmp:?}"/tmp/* "$tmp"/var/lib/mysql/* "$tmp"/run/mysqld/*
	echo "$ver" > "$tmp/.mysql-version"
	date -u +%FT%TZ > "$tmp/.complete"
	rm_tree "$dest"
	mv "$tmp" "$dest"
	log "MySQL $ver rootfs $dest ready in $((SECONDS - t0)) s ($(du -sh "$dest" | cut -f1))"
}

# Prints the MySQL version of the cached rootfs, building it if needed.
mysql_version() {
	local r
	r=$(mysql_rootfs)
	cat "$r/.mysql-version"
}
