"""senet_jax.machine: the processor's name from the kernel's cpuinfo, with fallbacks."""

from __future__ import annotations

import platform

import pytest

from senet_jax import machine

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model name\t: Intel(R) Xeon(R) Processor
cpu MHz\t\t: 2100.000

processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
"""
ARM = "processor\t: 0\nBogoMIPS\t: 243.75\nCPU implementer\t: 0x41\n"


def test_the_model_name_comes_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text(X86)
    assert machine.processor_name(str(tmp_path / "cpuinfo")) == "Intel(R) Xeon(R) Processor"


@pytest.mark.parametrize("text", [ARM, None], ids=["no model name", "no cpuinfo"])
def test_without_a_model_name_platform_names_the_processor(text, tmp_path):
    path = tmp_path / "cpuinfo"
    if text is not None:
        path.write_text(text)
    expected = platform.processor() or platform.machine() or "unknown"
    assert machine.processor_name(str(path)) == expected


@pytest.mark.parametrize(
    "result, expected",
    [
        ({"cpu": "AMD EPYC 7B13", "device_kind": "cpu"}, "AMD EPYC 7B13"),
        ({"cpu": "AMD EPYC 7B13", "device_kind": "NVIDIA H100"}, "NVIDIA H100 on AMD EPYC 7B13"),
        ({"test_accuracy": 0.5}, None),  # written before runs recorded their machine
    ],
)
def test_label(result, expected):
    assert machine.label(result) == expected
