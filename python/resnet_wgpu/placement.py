"""Which wgpu adapter is the GPU that Ray assigned to this actor.

Ray pins a GPU to an actor by setting ``CUDA_VISIBLE_DEVICES`` (NVIDIA; ``ROCR_VISIBLE_DEVICES``
for AMD, ``ONEAPI_DEVICE_SELECTOR`` for Intel) to its id. CUDA obeys that variable; Vulkan, Metal
and DX12 do not, and list every GPU of the machine to every process. Without a mapping, all
actors of a node would open the same first GPU. ``ray.get_gpu_ids()`` still tells which GPU the
actor holds, and these functions turn that id into the adapter to pass to ``Classifier``.

Ray numbers a node's GPUs the way NVML (and ROCm's SMI) enumerate them: in PCI bus order. So
GPU ``k`` is the ``k``-th hardware adapter of that vendor when the adapters are sorted by PCI bus
id, which wgpu reports on Vulkan (``pci_bus_id``). Where ``pynvml`` is installed an NVIDIA id is
matched through NVML's own PCI bus id instead, which also covers GPU UUIDs as ids.

Mixed vendors on one node: Ray's ``GPU`` resource counts one vendor's GPUs (the one its
accelerator manager found), so only that vendor's adapters are numbered; which one is taken
from the ``*_VISIBLE_DEVICES`` variable Ray set, or from ``vendor=``. An integrated GPU of
another vendor is never picked for a Ray GPU id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._native import adapters

#: PCI vendor ids of the vendors Ray schedules GPUs of.
VENDORS = {"nvidia": 0x10DE, "amd": 0x1002, "intel": 0x8086}

#: The variable through which Ray (and each vendor's runtime) pins that vendor's GPUs.
_VISIBLE = {
    "nvidia": "CUDA_VISIBLE_DEVICES",
    "amd": "ROCR_VISIBLE_DEVICES",
    "intel": "ONEAPI_DEVICE_SELECTOR",
}

#: Backends in order of preference. Every GPU appears once per backend that drives it, so ids
#: are counted within one backend only.
_BACKENDS = ("vulkan", "metal", "dx12", "gl")

_HARDWARE = ("DiscreteGpu", "IntegratedGpu", "VirtualGpu")


def _vendor_id(vendor: str | int) -> int:
    if isinstance(vendor, int):
        return vendor
    try:
        return VENDORS[vendor.lower()]
    except KeyError:
        raise ValueError(
            f"unknown vendor {vendor!r}: use one of {', '.join(VENDORS)} or a PCI vendor id"
        ) from None


def _bus_key(bus_id: str) -> tuple[int, ...] | None:
    """``0000:01:00.0`` (wgpu) or ``00000000:01:00.0`` (NVML) as comparable numbers."""
    try:
        domain, bus, rest = bus_id.strip().split(":")
        device, function = rest.split(".")
        return (int(domain, 16), int(bus, 16), int(device, 16), int(function, 16))
    except ValueError:
        return None


def _nvml_bus_id(gpu_id: int | str) -> str | None:
    """NVML's PCI bus id of NVIDIA GPU ``gpu_id`` (index or UUID), or None without pynvml."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        if isinstance(gpu_id, int):
            handle = pynvml.nvmlDeviceGetHandleByIndex(gpu_id)
        else:
            handle = pynvml.nvmlDeviceGetHandleByUUID(gpu_id)
        bus = pynvml.nvmlDeviceGetPciInfo(handle).busId
        return bus.decode() if isinstance(bus, bytes) else str(bus)
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def adapter_for_gpu(
    gpu_id: int | str,
    *,
    vendor: str | int | None = None,
    available: Sequence[dict[str, Any]] | None = None,
    nvml_bus_id: Any = _nvml_bus_id,
) -> dict[str, Any]:
    """The adapter (a dict of ``adapters()``) of the node's GPU ``gpu_id`` as Ray numbers it.

    ``vendor``: ``"nvidia"``, ``"amd"``, ``"intel"`` or a PCI vendor id; default: the only
    vendor with GPUs, else the one whose ``*_VISIBLE_DEVICES`` variable is set. ``available``
    (default ``adapters()``) and ``nvml_bus_id`` are there for tests.

    Raises ``RuntimeError`` if wgpu sees no hardware GPU (the GPU's Vulkan driver is missing: in
    a container, NVIDIA's needs ``NVIDIA_DRIVER_CAPABILITIES`` to include ``graphics``) and
    ``ValueError`` if the id does not exist or the vendor cannot be told.
    """
    listed = list(adapters() if available is None else available)
    hardware = [a for a in listed if a["device_type"] in _HARDWARE]
    backend = next((b for b in _BACKENDS if any(a["backend"] == b for a in hardware)), None)
    if backend is None:
        seen = "; ".join(f"{a['name']} ({a['backend']}, {a['device_type']})" for a in listed)
        raise RuntimeError(
            f"GPU {gpu_id} was assigned, but wgpu sees no hardware GPU (found: {seen or 'none'}). "
            "Install the GPU vendor's Vulkan driver (in a container, NVIDIA's needs "
            "NVIDIA_DRIVER_CAPABILITIES to include 'graphics'); `resnet info` lists what wgpu sees"
        )
    candidates = [a for a in hardware if a["backend"] == backend]
    if vendor is None:
        present = sorted({a["vendor"] for a in candidates})
        if len(present) == 1:
            wanted = present[0]
        else:
            pinned = [v for v, var in _VISIBLE.items() if os.environ.get(var) is not None]
            pinned_ids = [VENDORS[v] for v in pinned if VENDORS[v] in present]
            if len(pinned_ids) != 1:
                names = ", ".join(f"{a['name']} (vendor {a['vendor']:#06x})" for a in candidates)
                raise ValueError(
                    f"GPUs of several vendors ({names}) and no single *_VISIBLE_DEVICES variable "
                    "to tell which ones Ray counts: pass vendor='nvidia', 'amd' or 'intel'"
                )
            wanted = pinned_ids[0]
    else:
        wanted = _vendor_id(vendor)
    candidates = [a for a in candidates if a["vendor"] == wanted]

    # A UUID ("GPU-5d1c...") or an index given as text.
    key: int | str = gpu_id
    if isinstance(gpu_id, str) and gpu_id.strip().isdigit():
        key = int(gpu_id)
    if wanted == VENDORS["nvidia"]:
        bus = nvml_bus_id(key)
        if bus is not None:
            match = [a for a in candidates if _bus_key(a["pci_bus_id"]) == _bus_key(bus)]
            if match:
                return match[0]
    if not isinstance(key, int):
        raise ValueError(
            f"GPU id {gpu_id!r} is not an index; a UUID needs pynvml (pip install nvidia-ml-py) "
            "to be matched to an adapter"
        )
    if all(_bus_key(a["pci_bus_id"]) is not None for a in candidates):
        candidates.sort(key=lambda a: _bus_key(a["pci_bus_id"]))
    if not 0 <= key < len(candidates):
        names = "; ".join(f"{a['name']} {a['pci_bus_id']}" for a in candidates)
        raise ValueError(
            f"GPU {gpu_id} does not exist: wgpu sees {len(candidates)} GPU(s) of vendor "
            f"{wanted:#06x} on {backend}: {names or 'none'}"
        )
    return candidates[key]


def ray_adapter(vendor: str | int | None = None) -> dict[str, Any]:
    """Keyword arguments that put a ``Classifier`` on the GPU Ray assigned to this actor.

    ``{"adapter": index, "backend": name}``, or ``{}`` where Ray assigned no GPU (an actor
    with ``num_gpus=0``, a machine without GPUs): the default adapter, which on a GPU-less
    machine is the software one (lavapipe), shared by every actor. Call it inside the actor
    (``__init__``), not in the driver. An actor holding several GPUs gets the first: one
    ``Classifier`` drives one GPU, so give each actor one.
    """
    import ray

    ids = ray.get_gpu_ids()
    if not ids:
        return {}
    adapter = adapter_for_gpu(ids[0], vendor=vendor)
    return {"adapter": adapter["index"], "backend": adapter["backend"]}
