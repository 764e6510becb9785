"""Benchmark: sign and verify a model directory with modelshield and with OpenSSF model-signing, in one run.

    .venv/bin/python benchmarks/signing/bench_signing.py [--gb 2] [--repeat 3]

The directory holds a few large files and many small ones (random bytes, written once). Both tools sign with the same
ECDSA P-256 key in the same format (files method: one SHA-256 per file), and each verifies its own signature; the
OpenSSF tool also verifies modelshield's. The machine's SHA-256 throughput (one core, hashlib) is measured in the same
run, so the hashing figures can be read against "throughput x cores".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modelshield.supply_chain.keys import KeyAlgorithm, generate_keypair, write_keypair
from modelshield.supply_chain.signing import hash_model, sign_model, verify_model


def write_model(root: Path, gigabytes: float) -> int:
    """Four large files sharing 95% of the bytes, the rest in 2,000 small files; returns the total size."""
    total = int(gigabytes * 1024**3)
    large, small_count = int(total * 0.95) // 4, 2000
    small = (total - 4 * large) // small_count
    block = os.urandom(16 << 20)
    for i in range(4):
        with (root / f"model-{i:05d}-of-00004.safetensors").open("wb") as fh:
            left = large
            while left:
                n = min(left, len(block))
                fh.write(block[:n])
                left -= n
    for i in range(small_count):
        sub = root / "tokenizer" / f"part{i % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"piece{i}.json").write_bytes(os.urandom(small))
    return 4 * large + small_count * small


def sha256_throughput() -> float:
    """Bytes per second that one core hashes, over 256 MiB in 4 MiB updates."""
    data = os.urandom(4 << 20)
    h = hashlib.sha256()
    t0 = time.perf_counter()
    for _ in range(64):
        h.update(data)
    return 64 * len(data) / (time.perf_counter() - t0)


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="size of the model directory")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per operation (median reported)")
    args = parser.parse_args()
    from model_signing import hashing, signing, verifying

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        model = root / "model"
        model.mkdir()
        size = write_model(model, args.gb)
        keys = generate_keypair(KeyAlgorithm.ECDSA_P256)
        private, public = write_keypair(keys, root / "keys")
        ours, theirs = root / "ours.sig", root / "theirs.sig"
        cores = os.cpu_count() or 1
        one_core = sha256_throughput()
        # Warm the page cache once so that every tool reads from memory, not from the disk, in every run.
        hash_model(model)

        oms_sign = signing.Config().use_elliptic_key_signer(private_key=private)
        oms_sign.set_hashing_config(hashing.Config().use_file_serialization())
        oms_verify = verifying.Config().use_elliptic_key_verifier(public_key=public)
        rows = [
            ("modelshield hash only", timed(lambda: hash_model(model), args.repeat)),
            ("modelshield sign", timed(lambda: sign_model(model, keys, ours), args.repeat)),
            ("modelshield verify", timed(lambda: verify_model(model, ours, keys.public()), args.repeat)),
            ("model-signing sign", timed(lambda: oms_sign.sign(model, theirs), args.repeat)),
            ("model-signing verify", timed(lambda: oms_verify.verify(model, theirs), args.repeat)),
        ]
        verify_model(model, ours, keys.public())  # raises VerificationError on failure
        oms_verify.verify(model, ours)  # the OpenSSF verifier accepts modelshield's signature (raises if not)
        print(f"Model directory: {size / 1024**3:.2f} GiB in {len(list(model.rglob('*.*')))} files; {cores} cores.")
        rate = one_core / 1e6
        print(f"SHA-256 on one core (hashlib): {rate:.0f} MB/s; x {cores} cores = {cores * rate:.0f} MB/s\n")
        print("| operation | seconds (median) | MB/s |")
        print("| --- | --- | --- |")
        for name, seconds in rows:
            print(f"| {name} | {seconds:.2f} | {size / seconds / 1e6:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
