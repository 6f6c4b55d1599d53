"""Array backends for :mod:`nbtrace.tap`: numpy, torch and jax, recognised without importing them.

A tap reads the selected elements of a full vectorised array and, in replay, writes reference
values into a copy of it. Only the selected elements are gathered (on a GPU: only they move to
the host); the rest of the array is never copied for reading. torch and jax are looked up in
``sys.modules``: if the port never imported them, no value can be one of their arrays.
"""

from __future__ import annotations

import sys

import numpy as np


def backend(x) -> str:
    """"torch", "jax" or "numpy" (anything else numpy can read: floats, ints, lists)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, getattr(jax, "Array", ())):
        return "jax"
    return "numpy"


def ndim(x, kind: str) -> int:
    return np.ndim(x) if kind == "numpy" else x.ndim


def shape(x, kind: str) -> tuple[int, ...]:
    return tuple(np.shape(x)) if kind == "numpy" else tuple(x.shape)


def is_integer(x, kind: str) -> bool:
    if kind == "torch":
        return not (x.dtype.is_floating_point or x.dtype.is_complex) and x.dtype != sys.modules["torch"].bool
    if kind == "jax":
        return np.issubdtype(np.dtype(x.dtype), np.integer)
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    return np.issubdtype(np.asarray(x).dtype, np.integer)


def to_host(x, kind: str) -> np.ndarray:
    """A (small) array as float64 numpy; never keeps a link to autograd."""
    if kind == "torch":
        torch = sys.modules["torch"]
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def front(x, axes: tuple[int, ...], kind: str):
    """A view of ``x`` with ``axes`` moved to the front (no copy)."""
    lead = tuple(range(len(axes)))
    if axes == lead:
        return x
    if kind == "torch":
        return x.movedim(axes, lead)
    if kind == "jax":
        return sys.modules["jax.numpy"].moveaxis(x, axes, lead)
    return np.moveaxis(np.asarray(x), axes, lead)


def back(x, axes: tuple[int, ...], kind: str):
    """Inverse of :func:`front`."""
    lead = tuple(range(len(axes)))
    if axes == lead:
        return x
    if kind == "torch":
        return x.movedim(lead, axes)
    if kind == "jax":
        return sys.modules["jax.numpy"].moveaxis(x, lead, axes)
    return np.moveaxis(x, lead, axes)


def index_arrays(idx: tuple[np.ndarray, ...], x, kind: str) -> tuple:
    """Integer index arrays in the form ``x``'s backend indexes with (on its device)."""
    if kind == "torch":
        torch = sys.modules["torch"]
        return tuple(torch.as_tensor(i, dtype=torch.int64, device=x.device) for i in idx)
    return idx


def gather(x, idx: tuple, kind: str) -> np.ndarray:
    """Float64 host copy of ``x[idx]`` (only those elements are read; detached)."""
    if kind == "torch":
        return to_host(x.detach()[idx], kind)
    return np.asarray(x[idx], dtype=np.float64)


def pick(x, idx: tuple[np.ndarray, np.ndarray], kind: str) -> np.ndarray:
    """Float64 host values of ``x[s, f]`` for a few (s, f): basic indexing, no index arrays built
    (on a GPU each read copies that pixel's elements only)."""
    if kind == "torch":
        x = x.detach()
        return np.array([x[s, f].tolist() for s, f in zip(idx[0].tolist(), idx[1].tolist())], dtype=np.float64)
    return np.array([np.asarray(x[s, f], dtype=np.float64) for s, f in zip(idx[0].tolist(), idx[1].tolist())])


def region(x, sl: tuple[slice, ...], kind: str) -> np.ndarray:
    """Float64 host copy of a basic-slice window of ``x`` (a view until it is copied)."""
    if kind == "torch":
        return to_host(x.detach()[sl], kind)
    return np.asarray(x[sl], dtype=np.float64)


def put(x, idx: tuple, values: np.ndarray, kind: str):
    """A new array: ``x`` with ``x[idx] = values`` (cast to x's dtype); differentiable for torch
    (gradients flow to the elements not replaced) and jax; ``x`` itself is left unchanged."""
    if kind == "torch":
        torch = sys.modules["torch"]
        v = torch.as_tensor(values, dtype=x.dtype, device=x.device)
        return x.index_put(idx, v)
    if kind == "jax":
        return x.at[idx].set(np.asarray(values).astype(np.dtype(x.dtype)))
    out = np.array(x, copy=True)
    out[idx] = values
    return out


def like(x, values: np.ndarray, kind: str):
    """``values`` (host, x's shape) as an array of x's kind, dtype and device (a static replay)."""
    if kind == "torch":
        torch = sys.modules["torch"]
        return torch.as_tensor(values, dtype=x.dtype, device=x.device).reshape(x.shape)
    if kind == "jax":
        return sys.modules["jax.numpy"].asarray(values, dtype=x.dtype).reshape(x.shape)
    if isinstance(x, (bool, int, float)) or np.ndim(x) == 0 and not isinstance(x, np.ndarray):
        return type(x)(np.asarray(values).reshape(()).item())
    arr = np.asarray(x)
    return np.asarray(values, dtype=arr.dtype).reshape(arr.shape)


def flat_keys(s_idx, f_idx) -> np.ndarray:
    """(slow, fast) index arrays of any backend as host int64 keys slow·2³² + fast."""
    s, f = (_host_int(a) for a in (s_idx, f_idx))
    s, f = np.broadcast_arrays(s, f)
    return (s.astype(np.int64) << 32) + f.astype(np.int64)


def _host_int(a) -> np.ndarray:
    kind = backend(a)
    if kind == "torch":
        return a.detach().to("cpu").numpy()
    return np.asarray(a)


def device_rows(s_idx, f_idx, wanted: np.ndarray):
    """Positions along a flat pixel axis whose (slow, fast) is in ``wanted`` (int64 keys), and the
    keys found there. For torch index tensors the test runs on their device and only the hits
    come to the host."""
    if backend(s_idx) == "torch" and backend(f_idx) == "torch":
        torch = sys.modules["torch"]
        keys = s_idx.to(torch.int64) * (1 << 32) + f_idx.to(torch.int64)
        keys = keys.reshape(-1)
        want = torch.as_tensor(wanted, dtype=torch.int64, device=keys.device)
        rows = torch.nonzero(torch.isin(keys, want)).reshape(-1)
        return rows.cpu().numpy(), keys[rows].cpu().numpy()
    keys = flat_keys(s_idx, f_idx).reshape(-1)
    rows = np.nonzero(np.isin(keys, wanted))[0]
    return rows, keys[rows]
