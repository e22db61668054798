#!/usr/bin/env python3
"""Writes the safetensors fixtures under test/fixtures/safetensors/ with a tiny pure-Python writer
(an implementation independent of lmforge's, from the format description: u64 LE header length, JSON
header, space padding to 8-byte alignment, tensors contiguous in data_offsets order).

Run from the repo root:  /usr/bin/python3 test/reference/write_safetensors_fixture.py
"""
import json
import struct

OUT = "test/fixtures/safetensors/"


def pack(fmt, values):
    return b"".join(struct.pack("<" + fmt, v) for v in values)


def bf16(values):
    # bf16 = the high 16 bits of the float32 (values here are exact in bf16, so no rounding question).
    return b"".join(struct.pack("<f", v)[2:4] for v in values)


def write(path, tensors, metadata):
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, data in tensors:
            f.write(data)


# Every dtype lmforge reads.
write(OUT + "all_dtypes.safetensors", [
    ("wte.weight", "F32", [3, 4], pack("f", [i * 0.25 - 1 for i in range(12)])),
    ("scalar", "F64", [], pack("d", [3.141592653589793])),
    ("ids", "I32", [5], pack("i", [-2, -1, 0, 1, 2147483647])),
    ("big", "I64", [2], pack("q", [-(2 ** 40), 2 ** 62])),
    ("mask", "U8", [2, 2], bytes([0, 1, 254, 255])),
    ("empty", "F32", [0, 3], b""),
    ("bf", "BF16", [4], bf16([1.0, -2.5, 0.15625, 196608.0])),
    ("half", "F16", [5], pack("e", [1.0, -0.5, 65504.0, 2.0 ** -24, float("inf")])),
], {"format": "pt", "writer": "test/reference/write_safetensors_fixture.py"})

# Only dtypes lmforge writes, in the order and header layout lmforge uses: its writer must give these exact bytes.
write(OUT + "writable.safetensors", [
    ("h.0.attn.c_attn.weight", "F32", [2, 3], pack("f", [0.5, -1.5, 2.0, 1e-3, 3.25, -0.0])),
    ("scalar", "F64", [], pack("d", [2.718281828459045])),
    ("ids", "I32", [3], pack("i", [7, -8, 9])),
    ("mask", "U8", [3], bytes([1, 2, 3])),
], {"note": "lmforge byte-equality fixture"})
print("wrote", OUT + "all_dtypes.safetensors", OUT + "writable.safetensors")
