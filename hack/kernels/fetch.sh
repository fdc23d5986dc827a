#!/usr/bin/env bash
# Usage: hack/kernels/fetch.sh [--refresh] SERIES_OR_KVER...
#
# Makes each kernel ready to boot and prints its version, one a line: the
# Debian package linux-image-KVER-unsigned (vmlinuz and modules) downloaded,
# extracted into the cache and indexed with depmod. A series (5.10, 6.1,
# 6.12) resolves to the newest such package in bullseye, bookworm or
# bookworm-backports; a version (6.1.0-37-amd64) names the package itself.
#
# A kernel already in the cache is used without touching the network;
# --refresh (or RINGTAP_KERNELS_REFRESH=1) looks for a newer one of each
# series. apt runs with a private sources list, package lists and cache
# under the cache directory: the system's sources stay as they are. The
# mirror is the one the system's sources name.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# One fetch at a time per cache: two runs downloading into the same
# partial directory took each other's files. (Deleting the cache while a
# fetch holds the lock defeats it: do not.)
mkdir -p "$RT_CACHE"
exec 9>"$RT_CACHE/.fetch.lock"
flock 9

refresh=${RINGTAP_KERNELS_REFRESH:-}
if [ "${1:-}" = --refresh ]; then
  refresh=1
  shift
fi
(($#)) || rt_die "usage: hack/kernels/fetch.sh [--refresh] SERIES_OR_KVER... (e.g. 6.1 6.12 5.10)"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
suites=(bullseye bookworm bookworm-backports)

# mirror prints the URI of the system's Debian archive (not the security
# archive), read from its sources at run time.
mirror() {
  local f=/etc/apt/sources.list.d/debian.sources uri=""
  if [ -f "$f" ]; then
    # deb822: the first stanza whose URIs is not a security archive.
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || rt_die "no Debian archive URI in $f or /etc/apt/sources.list"
  echo "$uri"
}

apt_dir=$RT_CACHE/apt
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  # Only the Packages indices: no translations, no AppStream metadata.
  -o Acquire::Languages=none
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false
)
updated=""

# apt_update refreshes the private package lists, once per run.
apt_update() {
  [ -z "$updated" ] || return 0
  rt_need apt-get apt
  [ -f "$keyring" ] || rt_die "$keyring is missing: install debian-archive-keyring"
  local uri
  uri=$(mirror)
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  # apt fetches as the unprivileged _apt user when it exists.
  if id _apt >/dev/null 2>&1; then
    chown _apt "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  fi
  : >"$apt_dir/sources.list"
  for s in "${suites[@]}"; do
    echo "deb [signed-by=$keyring] $uri $s main" >>"$apt_dir/sources.list"
  done
  rt_log "apt-get update (${suites[*]})"
  apt-get "${apt_opts[@]}" -qq update >&2 || rt_die "apt-get update with $apt_dir/sources.list failed"
  updated=1
}

# newest SERIES prints "PACKAGE VERSION KVER" for the newest
# linux-image-SERIES.*-amd64-unsigned (not cloud, not rt).
newest() {
  local series=$1 re best="" bestv="" name v
  re="^linux-image-(${series//./\\.}\\.[0-9]+(-[0-9]+|\\+[a-z0-9.]+)-amd64)-unsigned\$"
  while read -r name; do
    [[ $name =~ $re ]] || continue
    while read -r v; do
      if [ -z "$bestv" ] || dpkg --compare-versions "$v" gt "$bestv"; then
        best=$name bestv=$v
      fi
    done < <(apt-cache "${apt_opts[@]}" madison "$name" | awk -F' *[|] *' '{print $2}')
  done < <(apt-cache "${apt_opts[@]}" pkgnames "linux-image-$series." | sort)
  [ -n "$best" ] || rt_die "no linux-image-$series.*-amd64-unsigned in ${suites[*]}"
  [[ $best =~ $re ]]
  echo "$best $bestv ${BASH_REMATCH[1]}"
}

# download PACKAGE VERSION prints the path of the .deb in the cache.
download() {
  local pkg=$1 ver=$2 d=$RT_CACHE/debs f
  f=$(ls "$d/${pkg}_${ver//:/%3a}_amd64.deb" 2>/dev/null || true)
  if [ -n "$f" ]; then
    echo "$f"
    return
  fi
  mkdir -p "$d/partial"
  id _apt >/dev/null 2>&1 && chown _apt "$d/partial"
  rt_log "downloading $pkg $ver"
  (cd "$d/partial" && apt-get "${apt_opts[@]}" -qq download "$pkg=$ver" >&2) ||
    rt_die "apt-get download $pkg=$ver failed"
  f=$(ls "$d/partial/${pkg}_"*.deb | head -1)
  mv "$f" "$d/"
  echo "$d/$(basename "$f")"
}

# extract DEB KVER unpacks the package and writes modules.dep.
extract() {
  local deb=$1 kver=$2 tree tmp
  tree=$(rt_tree "$kver")
  tmp=$tree.partial
  rm -rf "$tmp" "$tree"
  mkdir -p "$tmp"
  rt_log "extracting $(basename "$deb")"
  dpkg-deb -x "$deb" "$tmp"
  # depmod -b looks in DIR/lib/modules; newer packages ship usr/lib/modules.
  if [ ! -d "$tmp/lib/modules/$kver" ] && [ -d "$tmp/usr/lib/modules/$kver" ]; then
    ln -s usr/lib "$tmp/lib"
  fi
  [ -d "$tmp/lib/modules/$kver" ] || rt_die "$deb has no lib/modules/$kver"
  [ -f "$tmp/boot/vmlinuz-$kver" ] || rt_die "$deb has no boot/vmlinuz-$kver"
  rt_need depmod kmod
  depmod -b "$tmp" "$kver"
  touch "$tmp/.complete"
  mv "$tmp" "$tree"
}

mkdir -p "$RT_CACHE/series" "$RT_CACHE/trees"

for want in "$@"; do
  if [ -z "$refresh" ] && kver=$(rt_resolve_cached "$want"); then
    echo "$kver"
    continue
  fi
  apt_update
  if rt_is_kver "$want"; then
    pkg=linux-image-$want-unsigned
    ver=$(apt-cache "${apt_opts[@]}" madison "$pkg" | awk -F' *[|] *' '{print $2}' | head -1)
    [ -n "$ver" ] || rt_die "$pkg is not in ${suites[*]}"
    kver=$want
  else
    [[ $want =~ ^[0-9]+\.[0-9]+$ ]] || rt_die "$want is neither a series (6.1) nor a kernel version (6.1.0-37-amd64)"
    read -r pkg ver kver < <(newest "$want")
  fi
  if [ ! -f "$(rt_tree "$kver")/.complete" ]; then
    extract "$(download "$pkg" "$ver")" "$kver"
  fi
  rt_is_kver "$want" || echo "$kver" >"$RT_CACHE/series/$want"
  echo "$kver"
done
