"""BENCHMARKS.md, one section per CPU class: which CPU this is, and how a
benchmark script writes its part without touching another CPU's.

Contract
--------
The file is a title and preface, then one ``## CPU: <class>`` section per
CPU class the benchmarks have run on, each holding one ``### <title>``
subsection per benchmark script. ``<class>`` starts with the CPU's model
name and best instruction set (``cpu_key``), then details (family/model,
microarchitecture where known, cores and threads per core).

:func:`write_section` ``(path, title, body)`` replaces the subsection
``title`` of this CPU's section (or adds it at the end of the section, or
adds the section at the end of the file); everything else in the file is
kept byte for byte. A run on another CPU class never overwrites this one's
figures.
"""
import os
import platform
import re

PREFACE = """# Benchmarks

One section per CPU class the benchmarks have run on (a run replaces its own
CPU class's tables and never another's): the CPU model, its instruction set,
topology and the figures of each benchmark script. Rerun a script on a
machine to add or refresh its CPU class's section.
"""

# AMD family 25 (0x19) and 26 (0x1a): model ranges -> microarchitecture.
_AMD_UARCH = {
    23: [(0x00, 0x2f, "Zen / Zen+"), (0x30, 0xff, "Zen 2")],
    25: [(0x00, 0x0f, "Zen 3"), (0x10, 0x1f, "Zen 4"), (0x20, 0x2f, "Zen 3"),
         (0x40, 0x4f, "Zen 3+"), (0x50, 0x5f, "Zen 3"), (0x60, 0xaf, "Zen 4")],
    26: [(0x00, 0xff, "Zen 5")],
}


def _cpuinfo():
    """The first processor's fields of /proc/cpuinfo ({} elsewhere)."""
    info = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    if info:
                        break
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def topology():
    """(cores, threads per core) from /sys/devices/system/cpu/*/topology
    (real cores versus SMT siblings), or (os.cpu_count(), 1)."""
    base = "/sys/devices/system/cpu"
    cores, threads = set(), 0
    try:
        names = [n for n in os.listdir(base) if re.fullmatch(r"cpu\d+", n)]
    except OSError:
        names = []
    for name in names:
        top = os.path.join(base, name, "topology")
        try:
            with open(os.path.join(top, "core_id")) as fh:
                core = fh.read().strip()
            with open(os.path.join(top, "physical_package_id")) as fh:
                package = fh.read().strip()
        except OSError:
            continue
        cores.add((package, core))
        threads += 1
    if not cores:
        return os.cpu_count() or 1, 1
    return len(cores), max(1, threads // len(cores))


def isa_name(flags):
    """The best instruction-set level of cbptt the CPU flags allow."""
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags:
        return "AVX-512"
    if {"avx2", "fma"} <= flags:
        return "AVX2+FMA"
    machine = platform.machine()
    if machine in ("aarch64", "arm64"):
        return "NEON baseline"
    return "baseline"


def cpu_class():
    """(key, heading): ``key`` = model name and ISA (what identifies the
    class), ``heading`` = key plus family/model, microarchitecture where
    known, cores and threads per core."""
    info = _cpuinfo()
    model = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    key = f"{model}, {isa_name(flags)}"
    details = []
    try:
        family, number = int(info["cpu family"]), int(info["model"])
        uarch = ""
        if info.get("vendor_id") == "AuthenticAMD":
            uarch = next((u for lo, hi, u in _AMD_UARCH.get(family, [])
                          if lo <= number <= hi), "")
        details.append(f"family {family} model {number}"
                       + (f": {uarch}" if uarch else ""))
    except (KeyError, ValueError):
        pass
    cores, per_core = topology()
    details.append(f"{cores} core{'s' if cores != 1 else ''}, "
                   f"{per_core} thread{'s' if per_core != 1 else ''} per core")
    return key, f"{key} ({'; '.join(details)})"


def demote(text):
    """A script's own report (``# Title`` then ``## ...`` headings) as a
    subsection body: its first ``# `` line dropped (the subsection's title
    replaces it), every other heading two levels deeper."""
    lines = text.strip("\n").split("\n")
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    out = [("##" + ln) if re.match(r"#{1,4} ", ln) else ln for ln in lines]
    return "\n".join(out).strip("\n") + "\n"


def _split(text, level):
    """Split at headings of exactly ``level`` '#': [(heading or None, body)]."""
    mark = "#" * level + " "
    parts, head, buf, fence = [], None, [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith(mark):
            parts.append((head, "\n".join(buf)))
            head, buf = line, []
        else:
            buf.append(line)
    parts.append((head, "\n".join(buf)))
    return parts


def update_text(text, key, heading, title, body):
    """``text`` with the subsection ``### title`` of the section whose
    heading starts with ``## CPU: key`` set to ``body`` (see the module)."""
    if not text.strip():
        text = PREFACE
    sections = _split(text, 2)
    cpu_mark = f"## CPU: {key}"
    sub_head = f"### {title}"
    body = "\n" + body.strip("\n") + "\n"
    for i, (head, content) in enumerate(sections):
        if head is not None and (head == cpu_mark or head.startswith(cpu_mark + " ")):
            subs = _split(content, 3)
            for j, (sh, _) in enumerate(subs):
                if sh == sub_head:
                    subs[j] = (sh, body)
                    break
            else:
                subs[-1] = (subs[-1][0], subs[-1][1].rstrip("\n") + "\n")
                subs.append((sub_head, body))
            content = "\n".join(s for h, c in subs
                                for s in ([h] if h is not None else []) + [c])
            sections[i] = (f"## CPU: {heading}", content)
            break
    else:
        sections[-1] = (sections[-1][0], sections[-1][1].rstrip("\n") + "\n")
        sections.append((f"## CPU: {heading}", f"\n{sub_head}\n{body}"))
    return "\n".join(s for h, c in sections
                     for s in ([h] if h is not None else []) + [c]).rstrip("\n") + "\n"


def write_section(path, title, body):
    """Write ``body`` as this CPU class's subsection ``title`` of ``path``
    (created with the preface if absent); returns the CPU heading."""
    key, heading = cpu_class()
    try:
        with open(path) as fh:
            text = fh.read()
    except FileNotFoundError:
        text = ""
    new = update_text(text, key, heading, title, body)
    with open(path, "w") as fh:
        fh.write(new)
    return heading
