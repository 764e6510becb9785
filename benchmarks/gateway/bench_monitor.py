"""What monitoring costs per answered request: the watermark and every detector, as the gateway calls them.

    .venv/bin/python benchmarks/gateway/bench_monitor.py [--requests 3000] [--clients 50]

Builds a gateway directory for ``zoo:digits-cnn`` with monitoring on (all five detectors, the watermark, drift),
constructs the :class:`~modelshield.gateway.monitor.GatewayMonitor` exactly as the gateway does, and times
``GatewayMonitor.after`` (the part that runs on the request's thread) for requests of 1 and 32 rows from many
clients, in one thread, BLAS held to one thread as ``modelshield serve`` holds it. The model's own prediction is
not included. Prints the median and 99th percentile per request and per row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    threadpool_limits(limits=1, user_api="blas")

    from modelshield.gateway.config import parse_config, template
    from modelshield.gateway.monitor import GatewayMonitor
    from modelshield.gateway.serving import build_deployment, load_served
    from modelshield.monitoring.watermark import WatermarkKey

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "keys").mkdir()
        WatermarkKey.generate(root / "keys" / "watermark.key")
        text = template(source='target = "zoo:digits-cnn"').replace(
            "require_signature = true", "require_signature = false"
        )
        config = parse_config(text, base=root)
        model = load_served(config)
        deployment = build_deployment(config, model)
        started = time.perf_counter()
        monitor = GatewayMonitor(config, clock=time.time, audit=lambda *a: None)
        monitor.attach(deployment)
        fit_s = time.perf_counter() - started
        reference = model.reference
        assert reference is not None
        rng = np.random.default_rng(0)
        clf = model.classifier
        print(f"zoo:digits-cnn, detectors {[d.name for d in monitor.detectors]}; fitting them took {fit_s:.1f} s")
        for rows in (1, 32):
            idx = rng.integers(0, len(reference.x), size=(args.requests, rows))
            batches = [np.asarray(reference.x[i], dtype=np.float32) for i in idx]
            probabilities = [np.asarray(clf.predict_proba(b), dtype=np.float64) for b in batches]
            times = []
            for n, (x, p) in enumerate(zip(batches, probabilities, strict=True)):
                client = f"client-{n % args.clients}"
                t0 = time.perf_counter()
                monitor.after(client, x, p, deployment, key_id=client, source="127.0.0.1", request_id=str(n))
                times.append(time.perf_counter() - t0)
            ms = np.array(times) * 1000.0
            print(
                f"{rows:>2} row(s) per request, {args.requests} requests from {args.clients} clients: "
                f"median {np.median(ms):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms per request "
                f"({np.median(ms) / rows * 1000:.0f} us per row); monitor failures {monitor.failures}"
            )
        monitor.flush(60)
        monitor.close()


if __name__ == "__main__":
    main()
