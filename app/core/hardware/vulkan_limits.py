"""The one Vulkan device limit the planner needs: how large a tensor a device's shaders may read.

ggml's Vulkan backend refuses an operation when one of its tensors is larger than the device's
`maxStorageBufferRange` (unless the device has 64-bit shader indexing, which few drivers offer
yet). llama.cpp then keeps that weight in host memory and runs its matrix product on the CPU: on
a device with a 128 MiB range (lavapipe) the 262k-token output embedding of every Gemma, and the
logits of a 512-token batch, stay on the host. Real GPUs report 2-4 GiB, where this matters only
for the largest output layers. The value is read through the Vulkan loader itself with ctypes:
no Vulkan SDK is needed, and a machine without a loader gets no limits (nothing to refuse).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_VK_STRUCTURE_TYPE_APPLICATION_INFO = 0
_VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO = 1
_PROPERTIES_SIZE = 1024  # VkPhysicalDeviceProperties is 824 bytes on 64-bit platforms
_NAME_OFFSET = 20  # after apiVersion, driverVersion, vendorID, deviceID, deviceType
_NAME_SIZE = 256
# VkPhysicalDeviceLimits starts 8-aligned after the 16-byte pipelineCacheUUID (offset 296);
# maxStorageBufferRange is its eighth uint32.
_STORAGE_RANGE_OFFSET = 296 + 7 * 4


class _AppInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p),
                ("pApplicationName", ctypes.c_char_p), ("applicationVersion", ctypes.c_uint32),
                ("pEngineName", ctypes.c_char_p), ("engineVersion", ctypes.c_uint32),
                ("apiVersion", ctypes.c_uint32)]


class _InstanceInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.POINTER(_AppInfo)),
                ("enabledLayerCount", ctypes.c_uint32), ("ppEnabledLayerNames", ctypes.c_void_p),
                ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


def _loader() -> ctypes.CDLL | None:
    for name in ("libvulkan.so.1", ctypes.util.find_library("vulkan"), "vulkan-1.dll",
                 "libvulkan.1.dylib"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def storage_buffer_ranges() -> dict[str, int]:
    """maxStorageBufferRange of every Vulkan device, by its name ("llvmpipe (LLVM 15.0.6, 256 bits)")."""
    vk = _loader()
    if vk is None:
        return {}
    vk.vkCreateInstance.restype = ctypes.c_int
    vk.vkCreateInstance.argtypes = [ctypes.POINTER(_InstanceInfo), ctypes.c_void_p,
                                    ctypes.POINTER(ctypes.c_void_p)]
    vk.vkEnumeratePhysicalDevices.restype = ctypes.c_int
    vk.vkEnumeratePhysicalDevices.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                                              ctypes.c_void_p]
    vk.vkGetPhysicalDeviceProperties.restype = None
    vk.vkGetPhysicalDeviceProperties.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    vk.vkDestroyInstance.restype = None
    vk.vkDestroyInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    app = _AppInfo(_VK_STRUCTURE_TYPE_APPLICATION_INFO, None, b"gemma-desktop", 1, None, 0,
                   (1 << 22) | (1 << 12))  # Vulkan 1.1
    info = _InstanceInfo(_VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app),
                         0, None, 0, None)
    instance = ctypes.c_void_p()
    if vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance)) != 0:
        return {}
    try:
        count = ctypes.c_uint32(0)
        if vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None) != 0:
            return {}
        handles = (ctypes.c_void_p * count.value)()
        if vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles) not in (0, 5):
            return {}  # 5: VK_INCOMPLETE, the list still holds what it could
        ranges: dict[str, int] = {}
        for handle in handles[: count.value]:
            props = ctypes.create_string_buffer(_PROPERTIES_SIZE)
            vk.vkGetPhysicalDeviceProperties(handle, props)
            name = props.raw[_NAME_OFFSET:_NAME_OFFSET + _NAME_SIZE].split(b"\0", 1)[0]
            value = int.from_bytes(props.raw[_STORAGE_RANGE_OFFSET:_STORAGE_RANGE_OFFSET + 4],
                                   "little")
            ranges[name.decode(errors="replace")] = value
        return ranges
    finally:
        vk.vkDestroyInstance(instance, None)
