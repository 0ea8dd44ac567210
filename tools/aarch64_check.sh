#!/usr/bin/env bash
# tools/aarch64_check.sh: build the C kernel harness (tests/c/kernels_test.c,
# every building block of src/*.h against naive loops and libm) and run it
# natively at every instruction-set level this x86-64 CPU runs, and
# cross-compiled for aarch64 under qemu (the NEON baseline).
#
# Usage (from anywhere):
#   tools/aarch64_check.sh            # both
#   tools/aarch64_check.sh native     # the host compiler, every level
#   tools/aarch64_check.sh aarch64    # aarch64-linux-gnu-gcc + qemu-aarch64
#
# Needs: a C compiler (CC, default gcc) for native; Debian's
# gcc-aarch64-linux-gnu and qemu-user for aarch64
# (apt-get install -y gcc-aarch64-linux-gnu qemu-user). The flags are
# CMakeLists.txt's (-O3 -DNDEBUG -fno-math-errno -fno-trapping-math), with
# -Wall -Wextra: the headers compile without warnings.
# Environment: CHECK_DIR (default: a temporary folder) holds the binaries;
# QEMU_LD_PREFIX (default /usr/aarch64-linux-gnu) is the aarch64 C library.
# Exit status: 0 when every run passed, 1 when a check failed or a build
# broke, 77 when a needed tool is missing (nothing was run).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-all}"
if [[ -n "${CHECK_DIR:-}" ]]; then
    out="$CHECK_DIR"
    mkdir -p "$out"
else
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
fi
flags=(-O3 -DNDEBUG -fno-math-errno -fno-trapping-math -Wall -Wextra
       -I"$repo/src")
src="$repo/tests/c/kernels_test.c"
cross=aarch64-linux-gnu-gcc
sysroot="${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}"

need() {  # need TOOL...: 77 with a message when one is missing
    local t
    for t in "$@"; do
        if ! command -v "$t" > /dev/null; then
            echo "aarch64_check: $t not found (apt-get install -y" \
                 "gcc-aarch64-linux-gnu qemu-user)" >&2
            exit 77
        fi
    done
}

run_native() {
    local cc="${CC:-gcc}"
    need "$cc"
    echo "== native: $cc ${flags[*]}"
    "$cc" "${flags[@]}" -o "$out/kernels_test" "$src" -lm
    "$out/kernels_test"
}

run_aarch64() {
    need "$cross" qemu-aarch64
    if [[ ! -d "$sysroot" ]]; then
        echo "aarch64_check: no aarch64 C library at $sysroot" >&2
        exit 77
    fi
    echo "== aarch64: $cross ${flags[*]}, qemu-aarch64 -L $sysroot"
    "$cross" "${flags[@]}" -o "$out/kernels_test_aarch64" "$src" -lm
    # the binary is aarch64 code indeed (not a host build by mistake)
    if command -v file > /dev/null; then
        file "$out/kernels_test_aarch64" | grep -q "ARM aarch64" || {
            echo "aarch64_check: $cross did not build an aarch64 binary" >&2
            exit 1
        }
    fi
    # the products and activations are NEON vector code (fmla on 4 floats
    # or 2 doubles), not scalar loops
    if command -v aarch64-linux-gnu-objdump > /dev/null; then
        local neon
        neon=$(aarch64-linux-gnu-objdump -d "$out/kernels_test_aarch64" \
               | grep -cE 'fmla[[:space:]]+v[0-9]+\.(4s|2d)' || true)
        echo "NEON multiply-adds (fmla .4s/.2d) in the binary: $neon"
        if [[ "$neon" -eq 0 ]]; then
            echo "aarch64_check: no NEON fmla: the kernels were not vectorised" >&2
            exit 1
        fi
    fi
    qemu-aarch64 -L "$sysroot" "$out/kernels_test_aarch64"
}

case "$mode" in
    native) run_native ;;
    aarch64) run_aarch64 ;;
    all) run_native; run_aarch64 ;;
    *) echo "usage: $0 [native|aarch64|all]" >&2; exit 2 ;;
esac
