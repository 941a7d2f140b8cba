"""Seeded hostile *data files* (issue #12): each one is a pool path of its own (``.npz``, ``.npy``,
IDX, CIFAR pickle, SVHN ``.mat``, STL-10 ``.bin``, or not a file at all).

``build_files(root, marker)`` writes them under ``root/files`` and returns ``{name: expected}``
where expected is ``"ok"`` (loads) or the text the one-line error must contain. Tests load each
with a small memory budget and check: no exception but ``AuditError``, no code executed
(``marker`` never appears), memory stays within the budget (the bombs claim gigabytes).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import socket
import struct
import zipfile
from pathlib import Path

import numpy as np

BUDGET = 64 << 20  # the tests load every file with this max_bytes


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape: tuple, dtype: str = "|u1") -> bytes:
    """Only the header of an .npy member: the data is missing, which a reader must never reach."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _patch_zip(data: bytes, flag: int | None = None, method: int | None = None) -> bytes:
    """Set the general-purpose flag bits or the compression method in every local and central
    header: how an encrypted or deflate64 member looks to a reader."""
    out = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        pos = out.find(sig)
        while pos >= 0:
            if flag is not None:
                out[pos + flag_at : pos + flag_at + 2] = struct.pack("<H", flag)
            if method is not None:
                out[pos + method_at : pos + method_at + 2] = struct.pack("<H", method)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def _frag(obj) -> bytes:
    """A protocol-2 pickle of ``obj`` without its PROTO header and STOP: a value to splice."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _dict_pickle(items: dict[bytes, bytes]) -> bytes:
    """A protocol-2 pickle of a dict whose values are raw pickle fragments."""
    body = b"".join(b"C" + bytes([len(k)]) + k + v for k, v in items.items())  # SHORT_BINBYTES keys
    return b"\x80\x02}(" + body + b"u."


def _nested_list(depth: int) -> bytes:
    return b"]" * depth + b"a" * (depth - 1)


def _list_bomb() -> bytes:
    """A ~7 kB fragment: 300 references to a list of 300 references to a list of 3072 zeros;
    np.asarray would make it 276M int64 (2.2 GB)."""
    inner = b"]q\x01(K\x00q\x02" + b"h\x02" * 3071 + b"e"  # memo 1: [0] * 3072
    mid = b"]q\x03(" + b"h\x01" * 300 + b"e"  # memo 3: [memo 1] * 300
    return inner + b"0" + mid + b"0" + b"](" + b"h\x03" * 300 + b"e"  # POPs keep them in the memo only


def build_files(root: Path, marker: Path) -> dict[str, str]:
    d = root / "files"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    exp: dict[str, str] = {}

    def put(name: str, data: bytes, expected: str) -> None:
        (d / name).write_bytes(data)
        exp[name] = expected

    # --- .npz ---------------------------------------------------------------------------
    put("good.npz", _zip({"images.npy": _npy_bytes(good)}), "ok")
    put("encrypted.npz", _patch_zip(_zip({"images.npy": _npy_bytes(good)}), flag=1), "encrypted")
    put("deflate64.npz", _patch_zip(_zip({"images.npy": _npy_bytes(good)}, zipfile.ZIP_DEFLATED), method=9),
        "compression")
    put("claims_2m_images.npz", _zip({"images.npy": _npy_header((2_000_000, 28, 28))}), "budget")
    put("claims_2p80.npz", _zip({"images.npy": _npy_header((2**40, 2**40, 3))}), "max_pixels")
    put("zero_size.npz", _zip({"images.npy": _npy_bytes(np.zeros((5, 0, 28), np.uint8))}), "zero-sized")
    put("object.npz", _zip({"images.npy": _npy_bytes(np.array([None, 1], dtype=object))}), "object array")
    put("nan.npz", _zip({"images.npy": _npy_bytes(np.full((2, 4, 4), np.nan))}), "NaN")
    put("negative.npz", _zip({"images.npy": _npy_bytes(np.full((2, 4, 4), -3, np.int16))}), "[0, 255]")
    put("string_labels.npz", _zip({"images.npy": _npy_bytes(good), "labels.npy": _npy_bytes(np.array(list("abcd")))}),
        "labels")
    put("dup_ids.npz", _zip({"images.npy": _npy_bytes(good), "ids.npy": _npy_bytes(np.array(["a"] * 4))}), "unique")
    put("five_dims.npz", _zip({"images.npy": _npy_bytes(np.zeros((2, 2, 2, 2, 2), np.uint8))}), "dimensional")
    put("truncated.npz", _zip({"images.npy": _npy_bytes(good)})[:-30], "unknown format")
    put("no_images.npz", _zip({"weights.npy": _npy_bytes(good)}), "no image array")
    # --- .npy ---------------------------------------------------------------------------
    put("claims_1e9.npy", _npy_header((10**9, 28, 28)), "npy")
    put("object.npy", _npy_bytes(np.array([{"a": 1}], dtype=object)), "npy")
    put("float.npy", _npy_bytes(good.astype(np.float64) / 255), "ok")
    # --- IDX ------------------------------------------------------------------------------
    idx_head = bytes([0, 0, 8, 3])
    put("claims_6gb-images-idx3-ubyte.gz", gzip.compress(idx_head + struct.pack(">III", 8_000_000, 28, 28)
                                                           + bytes(3 << 20), 1), "budget")
    # 2^22 · 2^21 · 2^21 = 2^64: an int64 product wraps to 0
    put("overflow-images-idx3-ubyte", idx_head + struct.pack(">III", 1 << 22, 1 << 21, 1 << 21), "budget")
    put("zero_dim-images-idx3-ubyte", idx_head + struct.pack(">III", 0, 28, 28), "dimension of 0")
    put("short-images-idx3-ubyte", idx_head + struct.pack(">III", 10, 28, 28) + bytes(100), "holds")
    put("good-images-idx3-ubyte", idx_head + struct.pack(">III", 4, 8, 8) + good.tobytes(), "ok")
    # --- CIFAR pickles ------------------------------------------------------------------------
    data = np.zeros((2, 3072), np.uint8)
    put("cifar_evil_system", b"\x80\x02cposix\nsystem\nq\x00X" + struct.pack("<I", len(f"touch {marker}"))
        + f"touch {marker}".encode() + b"\x85q\x01Rq\x02.", "refused to unpickle global 'posix.system'")
    put("cifar_evil_eval", b"\x80\x02cbuiltins\neval\nX" + struct.pack("<I", 30)
        + f"open({str(marker)!r},'w')".ljust(30).encode()[:30] + b"\x85R.", "refused to unpickle global")
    put("cifar_list_bomb", _dict_pickle({b"data": _list_bomb()}), "uint8 N×3072 array")
    recon = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\xe4\x0b\x54\x85C\x01b\x87R"
    put("cifar_huge_reconstruct", _dict_pickle({b"data": recon}), "refused an array")
    encode_bomb = (b"c_codecs\nencode\nq\x00X" + struct.pack("<I", 4000) + b"a" * 4000 + b"q\x01X\x06\x00\x00\x00latin1q\x02"
                   + b"](" + b"h\x00h\x01h\x02\x86R" * 2000 + b"e")
    put("cifar_encode_bomb", _dict_pickle({b"data": encode_bomb}), "memory bomb")
    for name, labels in (("strings", _frag(["cat", "dog"])), ("dict", _frag({1: 2})), ("huge", _frag([2**80, 1])),
                         ("deep", _nested_list(50_000)), ("count", _frag([1, 2, 3]))):
        put(f"cifar_labels_{name}", _dict_pickle({b"data": _frag(data), b"labels": labels}), "labels must be")
    put("cifar_good", _dict_pickle({b"data": _frag(data), b"labels": _frag([3, 4])}), "ok")
    # --- SVHN .mat --------------------------------------------------------------------------
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"X": np.zeros((32, 32, 3, 20_000), np.uint8), "y": np.ones((20_000, 1), np.uint8)},
            do_compression=True)
    put("bomb_32x32.mat", buf.getvalue(), "budget")
    buf = io.BytesIO()
    savemat(buf, {"X": np.zeros((32, 32, 3, 2)), "y": np.ones((2, 1))})
    put("float_32x32.mat", buf.getvalue(), "uint8")
    buf = io.BytesIO()
    savemat(buf, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array(["ab"])})
    put("char_y_32x32.mat", buf.getvalue(), "labels")
    put("v73_32x32.mat", b"MATLAB 7.3 MAT-file" + bytes(200), "v7.3")
    put("garbage_32x32.mat", b"MATLAB 5.0" + os.urandom(300), "SVHN")
    # --- STL-10 -------------------------------------------------------------------------------
    with open(d / "unlabeled_X.bin", "wb") as fh:  # sparse: 600M images claimed, nothing stored
        fh.truncate(27648 * 600_000_000)
    exp["unlabeled_X.bin"] = "budget"
    # --- not files ------------------------------------------------------------------------
    os.mkfifo(d / "fifo")
    exp["fifo"] = "FIFO"
    os.symlink("/dev/zero", d / "devzero")
    exp["devzero"] = "character device"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(d / "sock"))
        exp["sock"] = "socket"
    except OSError:
        pass
    finally:
        sock.close()
    put("empty", b"", "unknown format")
    return exp
