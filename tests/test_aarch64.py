"""The C kernels on other CPUs than this one: tools/aarch64_check.sh builds
tests/c/kernels_test.c (every building block of src/*.h against naive loops
and libm, float and double) for aarch64 and runs it under qemu, and builds
it natively and runs it at every instruction-set level this CPU has.

Skipped, with the reason, when the cross compiler or qemu is absent (Debian:
``apt-get install -y gcc-aarch64-linux-gnu qemu-user``; .ci/run installs
them when it can)."""
import os
import platform
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "aarch64_check.sh")
SYSROOT = os.environ.get("QEMU_LD_PREFIX", "/usr/aarch64-linux-gnu")


def _run(mode, tmp_path):
    env = dict(os.environ, CHECK_DIR=str(tmp_path))
    return subprocess.run(["bash", SCRIPT, mode], capture_output=True,
                          text=True, env=env, timeout=900)


def _summary(out):
    m = re.search(r"^(\d+) checks, (\d+) failed$", out, re.MULTILINE)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_kernels_on_aarch64_under_qemu(tmp_path):
    missing = [t for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64")
               if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install "
                    "-y gcc-aarch64-linux-gnu qemu-user)")
    if not os.path.isdir(SYSROOT):
        pytest.skip(f"no aarch64 C library at {SYSROOT}")
    p = _run("aarch64", tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "aarch64 (NEON baseline)" in p.stdout
    assert "flush-to-zero: checked" in p.stdout      # FPCR.FZ
    checks, failed = _summary(p.stdout)
    assert failed == 0 and checks > 50000


def test_kernels_natively_at_every_level(tmp_path):
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        pytest.skip("no C compiler (gcc or $CC)")
    p = _run("native", tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    levels = re.findall(r"^level (\w+):$", p.stdout, re.MULTILINE)
    from cbptt import _isa
    if platform.machine() in ("x86_64", "AMD64"):
        assert levels == list(_isa.LEVELS[:_isa._cpu_level() + 1])
    else:
        assert levels == ["baseline"]
    assert p.stdout.count("  ok") == len(levels)
    assert _summary(p.stdout)[1] == 0


def test_script_reports_a_missing_tool(tmp_path):
    """Without the tools the script exits 77 and says what to install."""
    bin_dir = tmp_path / "bin"            # the shell's basic tools only
    bin_dir.mkdir()
    for tool in ("dirname", "mkdir", "mktemp", "rm"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    env = dict(os.environ, CHECK_DIR=str(tmp_path), PATH=str(bin_dir))
    bash = shutil.which("bash")
    p = subprocess.run([bash, SCRIPT, "aarch64"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 77
    assert "not found (apt-get install -y gcc-aarch64-linux-gnu qemu-user)" \
        in p.stderr
