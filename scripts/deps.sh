#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install the Debian packages the build, boot and test stages need.
# As root this installs what is missing; otherwise it prints the command.
. "$(dirname "$0")/lib.sh"

pkgs=(linux-source-6.12 build-essential bc bison flex libelf-dev libssl-dev
      cpio kmod ccache busybox-static qemu-system-x86 python3 xz-utils patch
      sparse rsync bash-static)
case "${1:-}" in
--bench) pkgs+=(gnuplot-nox) ;;
--docs) pkgs+=(python3-sphinx python3-sphinx-rtd-theme graphviz) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
((${#missing[@]})) || exit 0

if ((EUID)); then
	echo "missing Debian packages; run as root:"
	echo "  apt-get update && apt-get install -y ${missing[*]}"
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
