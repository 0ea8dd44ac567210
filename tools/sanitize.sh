#!/usr/bin/env bash
# tools/sanitize.sh: run cbptt's test suite under AddressSanitizer and valgrind.
#
# Usage (from anywhere; Linux, gcc, Python >= 3.11):
#   tools/sanitize.sh            # both runs
#   tools/sanitize.sh asan       # AddressSanitizer only
#   tools/sanitize.sh valgrind   # valgrind memcheck only
#   tools/sanitize.sh asan tests/test_elman.py -k float32   # extra pytest args
#
# asan: builds the extension with -Ccmake.define.CBPTT_ASAN=ON (AddressSanitizer
#   on every compiled module plus Cython's bounds, wraparound and
#   initialisation checks) into its own virtual environment and build
#   directory, then runs the whole test suite with the ASan runtime preloaded
#   (CPython itself is not instrumented, so LD_PRELOAD puts the runtime first;
#   detect_leaks=0 because CPython keeps memory alive until exit by design).
#   Any out-of-bounds read or write, use after free or double free in a kernel
#   aborts the run with a report.
# valgrind: builds a RelWithDebInfo extension (with Cython bounds checks) into
#   a third environment and runs the tests that do not depend on timing under
#   valgrind memcheck (PYTHONMALLOC=malloc so that every Python allocation is
#   visible). Errors inside NumPy/SciPy/OpenBLAS/CPython are counted but only
#   errors with a frame in a cbptt module fail the run; torch-based tests are
#   skipped (hours under valgrind) and the fuzz runs few examples.
#
# Environment: SANITIZE_DIR (default: <repo>/build/sanitize) holds the virtual
# environments and logs; PYTHON (default: python3) makes them. The build
# needs scikit-build-core, cython, cython-cmake, numpy and scipy; the tests
# need pytest, hypothesis and threadpoolctl (the environments see the system
# site-packages, so a development setup already has them).
# Exit status: 0 when no run reported an error.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${SANITIZE_DIR:-$repo/build/sanitize}"
py="${PYTHON:-python3}"
mode="${1:-all}"
[[ $# -gt 0 ]] && shift
mkdir -p "$out"

log() { printf '\n== sanitize: %s\n' "$*"; }

make_env() {  # make_env NAME CMAKE-ARGS... -> prints the env's python
    local env="$out/$1"; shift
    if [[ ! -x "$env/bin/python" ]]; then
        "$py" -m venv --system-site-packages "$env" >&2
    fi
    log "building into $env ($*)" >&2
    (cd "$repo" && "$env/bin/python" -m pip install -q --no-build-isolation \
        --no-deps --force-reinstall "-Cbuild-dir=$env/build" "$@" . >&2)
    echo "$env/bin/python"
}

run_tests() {  # run_tests PYTHON PYTEST-ARGS...: the env's cbptt, never the source folder
    local python="$1"; shift
    (cd "$repo" && "$python" -P -m pytest -p no:cacheprovider "$@")
}

run_asan() {
    local libasan python
    libasan="$(gcc -print-file-name=libasan.so)"
    [[ -e "$libasan" ]] || { echo "libasan not found (gcc -print-file-name)"; return 1; }
    python="$(make_env asan-venv -Ccmake.define.CBPTT_ASAN=ON)"
    log "AddressSanitizer run (log: $out/asan.log)"
    # allocator_may_return_null: huge allocations raise MemoryError as usual.
    if LD_PRELOAD="$libasan" \
       ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=0:halt_on_error=1:log_path=$out/asan-report" \
       run_tests "$python" -q "$@" 2>&1 | tee "$out/asan.log"; then
        if compgen -G "$out/asan-report*" > /dev/null; then
            echo "AddressSanitizer reported errors: $out/asan-report.*"; return 1
        fi
        log "AddressSanitizer: no error reported"
    else
        echo "AddressSanitizer run failed (see $out/asan.log, $out/asan-report.*)"
        return 1
    fi
}

run_valgrind() {
    local python vlog supp=()
    command -v valgrind > /dev/null || { echo "valgrind not installed"; return 1; }
    python="$(make_env valgrind-venv -Ccmake.build-type=RelWithDebInfo \
              -Ccmake.define.CBPTT_BOUNDSCHECK=ON)"
    [[ -e /usr/lib/valgrind/python3.supp ]] && supp=(--suppressions=/usr/lib/valgrind/python3.supp)
    vlog="$out/valgrind.log"
    log "valgrind memcheck run (log: $vlog; slow)"
    local tests=(tests/test_elman.py tests/test_cec.py tests/test_lstm.py
                 tests/test_bad_input.py tests/test_fuzz.py)
    [[ $# -gt 0 ]] && tests=("$@")
    PYTHONMALLOC=malloc CBPTT_FUZZ_EXAMPLES="${CBPTT_FUZZ_EXAMPLES:-8}" \
        valgrind --tool=memcheck --error-limit=no --num-callers=30 \
        "${supp[@]}" --log-file="$vlog" \
        "$python" -P -m pytest -p no:cacheprovider -q -k "not torch" "${tests[@]}"
    "$python" - "$vlog" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"\n==\d+== \n", text)
errors = [b for b in blocks if re.search(r"==\d+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and destination)", b)]
# A cbptt frame: a Cython function (__pyx_..._5cbptt_...), a module file
# (cbptt/_x.cpython-...so, _x.c) or one of cbptt's C headers.
ours = [b for b in errors
        if re.search(r"cbptt|\b_(elman|lstm|blas|train)\.c\b", b)]
total = sum(int(n) for n in re.findall(r"ERROR SUMMARY: (\d+) errors", text))
print(f"valgrind: {total} errors in all processes, {len(errors)} error "
      f"reports, {len(ours)} with a frame in a cbptt module")
for b in ours[:5]:
    print(b)
sys.exit(1 if ours else 0)
EOF
}

status=0
case "$mode" in
    asan) run_asan "$@" || status=1 ;;
    valgrind) run_valgrind "$@" || status=1 ;;
    all) run_asan "$@" || status=1; run_valgrind "$@" || status=1 ;;
    *) echo "usage: $0 [asan|valgrind|all] [pytest args]"; exit 2 ;;
esac
exit $status
