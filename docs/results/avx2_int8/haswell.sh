#!/bin/bash
# Run a command as on an AVX2-only CPU: qemu-user's Haswell model (CPUID: AVX2,
# FMA; no AVX-512, VNNI, BF16, AMX) and a /proc/cpuinfo that agrees (qemu-user
# shows the host's), in a private mount namespace (needs root or user
# namespaces). The features that qemu's TCG cannot emulate (pcid, x2apic, ...)
# are switched off, silencing it.   Usage: haswell.sh COMMAND [ARGS ...]
DIR="$(cd "$(dirname "$0")" && pwd)"
exec unshare -m bash -c 'mount --bind "$0/cpuinfo_haswell" /proc/cpuinfo && exec qemu-x86_64 -cpu Haswell,-pcid,-x2apic,-tsc-deadline,-hle,-invpcid,-rtm "$@"' "$DIR" "$@"
