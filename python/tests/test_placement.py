"""Ray GPU ids to wgpu adapters, on made-up machines (this one has no GPU): PCI bus order,
one backend, one vendor, NVML's bus id when it has one, and clear errors otherwise."""

from __future__ import annotations

import pytest
from resnet_wgpu import adapter_for_gpu
from resnet_wgpu.placement import VENDORS

NVIDIA, AMD, INTEL, MESA = VENDORS["nvidia"], VENDORS["amd"], VENDORS["intel"], 0x10005


def gpu(index, name, vendor, bus, backend="vulkan", kind="DiscreteGpu"):
    return {"index": index, "name": name, "backend": backend, "device_type": kind,
            "vendor": vendor, "device": 0, "pci_bus_id": bus, "driver": "", "driver_info": ""}  # fmt: skip


# Vulkan lists the H100s out of PCI order; GL lists them again; lavapipe is there too.
NODE = [
    gpu(0, "H100 c", NVIDIA, "0000:c1:00.0"),
    gpu(1, "H100 a", NVIDIA, "0000:41:00.0"),
    gpu(2, "llvmpipe", MESA, "", kind="Cpu"),
    gpu(3, "H100 b", NVIDIA, "0000:81:00.0"),
    gpu(0, "H100 a (GL)", NVIDIA, "", backend="gl"),
]


def no_nvml(_gpu_id):
    return None


def test_ids_follow_pci_bus_order_on_one_backend(monkeypatch) -> None:
    names = [adapter_for_gpu(i, available=NODE, nvml_bus_id=no_nvml)["name"] for i in range(3)]
    assert names == ["H100 a", "H100 b", "H100 c"]
    a = adapter_for_gpu("2", available=NODE, nvml_bus_id=no_nvml)
    assert (a["index"], a["backend"]) == (0, "vulkan")


def test_nvml_bus_id_wins_over_the_order() -> None:
    # NVML's bus ids carry an 8-digit domain.
    bus = {0: "00000000:81:00.0", "GPU-1234": "00000000:C1:00.0"}
    assert adapter_for_gpu(0, available=NODE, nvml_bus_id=bus.get)["name"] == "H100 b"
    assert adapter_for_gpu("GPU-1234", available=NODE, nvml_bus_id=bus.get)["name"] == "H100 c"
    with pytest.raises(ValueError, match="needs pynvml"):
        adapter_for_gpu("GPU-9999", available=NODE, nvml_bus_id=no_nvml)


def test_missing_id_and_no_hardware() -> None:
    with pytest.raises(ValueError, match="GPU 3 does not exist: wgpu sees 3 GPU"):
        adapter_for_gpu(3, available=NODE, nvml_bus_id=no_nvml)
    with pytest.raises(RuntimeError, match="no hardware GPU.*Vulkan driver"):
        adapter_for_gpu(0, available=[NODE[2]], nvml_bus_id=no_nvml)


def test_mixed_vendors(monkeypatch) -> None:
    node = [
        gpu(0, "Arc iGPU", INTEL, "0000:00:02.0", kind="IntegratedGpu"),
        gpu(1, "MI300 b", AMD, "0000:45:00.0"),
        gpu(2, "MI300 a", AMD, "0000:05:00.0"),
    ]
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ONEAPI_DEVICE_SELECTOR"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="several vendors.*vendor='nvidia'"):
        adapter_for_gpu(0, available=node, nvml_bus_id=no_nvml)
    # Ray pinned AMD GPUs: the variable tells; the Intel iGPU is never numbered.
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "1")
    assert adapter_for_gpu(1, available=node, nvml_bus_id=no_nvml)["name"] == "MI300 b"
    monkeypatch.delenv("ROCR_VISIBLE_DEVICES")
    assert adapter_for_gpu(0, vendor="amd", available=node, nvml_bus_id=no_nvml)["name"] == (
        "MI300 a"
    )
    assert adapter_for_gpu(0, vendor="intel", available=node, nvml_bus_id=no_nvml)["name"] == (
        "Arc iGPU"
    )
    with pytest.raises(ValueError, match="unknown vendor 'matrox'"):
        adapter_for_gpu(0, vendor="matrox", available=node, nvml_bus_id=no_nvml)


def test_this_machine() -> None:
    import resnet_wgpu

    hardware = [a for a in resnet_wgpu.adapters() if a["device_type"] != "Cpu"]
    if hardware:
        assert adapter_for_gpu(0)["device_type"] != "Cpu"
    else:
        # lavapipe only (CI): a Ray GPU id cannot be placed, and says why.
        with pytest.raises(RuntimeError, match="no hardware GPU"):
            adapter_for_gpu(0, nvml_bus_id=no_nvml)
