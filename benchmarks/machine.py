"""The CPU features a benchmark figure depends on, printed beside every figure (machines differ
between sessions: AVX2 only, or AVX-512 with bf16 and VNNI)."""
from __future__ import annotations

import re
from pathlib import Path

# vector width (avx2 / avx512f), bf16 (training --fast), VNNI (int8 inference), AMX
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16")


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of SPEED_FLAGS /proc/cpuinfo (or `cpuinfo`) lists, in SPEED_FLAGS' order."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    found = set(re.findall(r"\b(" + "|".join(SPEED_FLAGS) + r")\b", cpuinfo))
    return [f for f in SPEED_FLAGS if f in found]
