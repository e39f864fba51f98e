#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make image`: the OCI image the Helm chart runs, built with Debian's buildah from
# scratch: ringmeshd and the ringmesh CLI, the shared libraries they load (found by
# ldd, from this machine's Debian packages), and the two programs the chart's
# bpffs init container runs (sh, mount) with theirs. No package manager, no
# shell for the daemon: it is the entrypoint. Saved as an OCI archive:
#   tools/image.sh [BUILD]   -> BUILD/ringmesh-image.tar, image localhost/ringmesh:VERSION
# (VERSION: `ringmeshd --version`, which is the chart's appVersion). Load it on a node
# with `ctr -n k8s.io images import BUILD/ringmesh-image.tar`, or push it with
# `skopeo copy oci-archive:BUILD/ringmesh-image.tar docker://REGISTRY/ringmesh:VERSION`.
# The image storage is kept under BUILD/image (vfs driver: needs no overlay support,
# no user namespace and no container run), never the machine's.
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
for b in ringmeshd ringmesh; do
	[ -x "$build/$b" ] || { echo "Error: $build/$b missing; run 'make all' first" >&2; exit 1; }
done
if ! command -v buildah >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "Error: buildah missing; run 'sudo apt-get install buildah'" >&2
		exit 1
	fi
	echo "  DEPS     installing buildah"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi
version=$("$build/ringmeshd" --version | awk '{ print $2 }')
chart_version=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' helm/ringmesh/Chart.yaml)
if [ "$version" != "$chart_version" ]; then
	echo "Error: ringmeshd is $version but the chart's appVersion is $chart_version" >&2
	exit 1
fi
name=localhost/ringmesh:$version
out=$top/$build/ringmesh-image.tar
store=$top/$build/image
rootfs=$store/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/etc "$rootfs"/usr/bin "$rootfs"/bin "$rootfs"/tmp "$rootfs"/sys/fs/bpf "$rootfs"/host/cgroup2

# A program (0755: mount's setuid bit is not wanted) and every library ldd resolves,
# at the same paths, with their modes (the dynamic loader must stay executable).
add() { # src [dst]
	local src=$1 dst=${2:-$1} lib
	install -D -m 0755 "$src" "$rootfs$dst"
	while read -r lib; do
		[ -e "$rootfs$lib" ] || install -D -m "$(stat -L -c %a "$lib")" "$lib" "$rootfs$lib"
	done < <(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}
add "$build/ringmeshd" /usr/bin/ringmeshd
add "$build/ringmesh" /usr/bin/ringmesh
add /bin/dash /bin/sh
add /bin/mount
printf 'root:x:0:0:root:/:/usr/bin/ringmeshd\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

b=(buildah --root "$store/storage" --runroot "$store/run" --storage-driver vfs)
# One image kept: the previous build's goes (vfs stores every layer in full).
"${b[@]}" rmi --all --force >/dev/null 2>&1 || true
ctr=$("${b[@]}" from --quiet scratch)
trap '"${b[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
"${b[@]}" copy --quiet "$ctr" "$rootfs" / >/dev/null
"${b[@]}" config \
	--entrypoint '["/usr/bin/ringmeshd"]' --cmd '["--help"]' \
	--env PATH=/usr/bin:/bin \
	--label org.opencontainers.image.title=ringmesh \
	--label org.opencontainers.image.version="$version" \
	--label org.opencontainers.image.licenses="(LGPL-2.1 OR BSD-2-Clause)" \
	--label org.opencontainers.image.revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	"$ctr"
"${b[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
trap - EXIT
rm -f "$out"
"${b[@]}" push --quiet "$name" "oci-archive:$out:$name"
echo "  IMAGE    $name -> ${out#"$top"/} ($(du -h "$out" | cut -f1))"

# The archive is what ships: unpack its layer and run what the chart runs from it,
# in a chroot (so a missing library shows here, not on a node).
if [ "$(id -u)" -eq 0 ]; then
	chk=$store/check
	rm -rf "$chk"; mkdir -p "$chk/oci" "$chk/root"
	tar -xf "$out" -C "$chk/oci"
	manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$chk/oci/index.json")
	python3 -c 'import json,sys; [print(l["digest"].split(":")[1]) for l in json.load(open(sys.argv[1]))["layers"]]' \
		"$chk/oci/blobs/sha256/$manifest" | while read -r layer; do
		tar -xf "$chk/oci/blobs/sha256/$layer" -C "$chk/root"
	done
	got=$(chroot "$chk/root" /usr/bin/ringmeshd --version)
	chroot "$chk/root" /usr/bin/ringmesh version >/dev/null
	chroot "$chk/root" /bin/sh -ec 'read -r l </etc/passwd; mount --version' >/dev/null
	[ "$got" = "ringmeshd $version" ] || { echo "Error: image's ringmeshd says '$got'" >&2; exit 1; }
	rm -rf "$chk"
	echo "  IMAGE    checked: ringmeshd, ringmesh, sh, mount run from the archive's layer"
fi
