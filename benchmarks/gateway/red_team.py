"""Red-team replay: real attacks and a benign mix through a real gateway on 127.0.0.1, against the monitoring.

    .venv/bin/python benchmarks/gateway/red_team.py [--quick] [--out benchmarks/gateway/red_team_results.json]

The model is ``zoo:digits-cnn`` (10 classes, 8x8 images in [0, 1]), served by ``Gateway`` under uvicorn in a thread
of this process, with monitoring, the watermark and the automated response on (``[monitoring]``, ``[response]``,
``[alerts]``; ``--config-extra`` adds or replaces TOML keys). Every request is real HTTP with a real API key. The
gateway's ``clock`` is a simulated clock this script moves: each request is sent at its simulated time, so days of
traffic take minutes. One driver thread sends everything in time order (benign requests due before an attacker's
next request go first), so the monitoring sees one interleaved stream, as it would live.

Data (seeded): the zoo target's training split is the owner's reference (the gateway's ``[model] reference``); its
test split is cut into ``eval`` (200 rows, never queried by anyone: fidelity and evasion inputs) and ``held`` (the
rest: non-members for membership probing). Digits has 1,797 images, too few for days of fresh traffic, so clients
send training+held images: classes drawn from the client's own mix, and within a class each client walks its own
shuffle (an image comes back only after all of its class), in one of three styles fixed per client before any run:
``rescanned`` (every ink pixel moved within its own grey level: the same handwriting scanned again; most clients),
``clean`` (the rows as they are) and ``noisy`` (Gaussian sensor noise on every pixel and some 1-pixel shifts: another
scanner; a harder population, reported on its own). The in-distribution thieves hold rescanned images (what most
benign clients send); the out-of-distribution thief holds MNIST images resampled to 8x8.

Legs, after ``--days`` simulated days of benign traffic (the monitoring's baselines), each with fresh keys:

- ``extract-random``, ``extract-jacobian`` and ``extract-jacobian-10`` (synthetic queries: Papernot's augmentation
  from 100 or 10 natural seeds), ``extract-ood`` (natural MNIST data):
  :func:`modelshield.attacks.extraction.extract_model` at a scripted rate;
- ``extract-natural``: in-distribution data from one key at a benign-like rate;
- ``extract-sybil``: in-distribution data round-robin over 20 keys, each at a benign-like rate;
- ``evasion-hsj``, ``evasion-square``: :func:`~modelshield.attacks.evasion.blackbox.hop_skip_jump` and
  :func:`~modelshield.attacks.evasion.blackbox.square_attack`, one input at a time;
- ``membership-label-only``: :func:`~modelshield.attacks.membership.attacks.label_only_attack` on members (training
  rows) and non-members (held rows).

Per leg: detected (an alert naming one of its clients), queries until the first alert (its simulated time mapped to
the attacker's answered queries), queries until the response took effect (the first 403, 429 or answer without
probabilities) and until the attacker was cut off, and what the attacker held at each point and at its end: for
extraction, a copy trained (the attack's own surrogate recipe) on exactly the answers received up to that point, its
fidelity on ``eval`` and the watermark proof's p-value; for evasion, the share of inputs for which a received answer
shows an adversarial example (Square: inside the L∞ ball; HopSkipJump: within L2 ``--hsj-l2``); for membership,
whether the probe finished and its AUC. Each is compared with the same attack run directly against the model
(undefended). Attackers adapt as far as their attack allows: answers reduced to labels do not stop extraction (it
goes on with one-hot answers), HopSkipJump or the label-only probe (they use labels anyway); they stop the Square
attack, which needs scores. A 403 or 429 cuts a key off; the sybil goes on with its remaining keys until all are
refused. What an attacker might do beyond that (wait out a throttle, switch attacks, buy new keys) is not modelled.
Benign: false alerts per client-day and per 1,000 client-hours, and benign requests refused. Watermark: the proof on
each thief's copy, on a copy stolen with the full budget from a second gateway whose response is off (so that the
watermark is measured on its own), and on 20 independently trained models (10 of the thieves' surrogate
architecture trained on true labels, 10 scikit-learn models), none of which saw an answer.

Input validation is off (``[validation] enabled = false``): with it on, queries that touch pixels blank in every
training image are refused with 422 before the monitoring sees them, which would measure the schema check instead.
Limits are set high so that only the response refuses. A throttle action is enforced by the gateway's limiter on
wall-clock time, which this compressed simulation does not follow: under a policy that throttles, 429s would come
far sooner (in queries) than live; the default policy suspends or answers labels only.

Nothing here is tuned on the monitoring's results: the benign styles, rates and the attack settings were fixed
before the first run. One change came after it: benign clients drew images with replacement, so a heavy client sent
jittered copies of the same image minutes apart, which no real client does and which the duplicate detectors
rightly flagged; they now walk their pool without replacement (see above). That first run (10 clients, 3.45
simulated days) counted 41 false alerts in 829 client-hours. Two clients were added later, with the ``new-key``
signal (a key in its first day drawing answers far faster than established clients): ``benign-late-0`` (batch) and
``benign-late-1`` (interactive) join halfway through the baseline days, new keys among established ones, so that the
signal's cost on new benign keys is measured and not only its catch. ``extract-jacobian-10`` was added after the
runs of 2026-12-04: on digits a copy trained on the 100 natural seeds of ``extract-jacobian`` alone reaches 0.88-0.90
fidelity, above 80% of the undefended attack's, so that leg cannot show whether the synthetic queries are cut off in
time. The copy trained on a Jacobian leg's seeds alone is reported, and where a leg's copy passes the bar the target
is judged on what its synthetic queries added: ``(copy - seeds alone) / (undefended - seeds alone)`` below 80%.

Writes ``--out`` (JSON) and the same tables as Markdown next to it (``.md``); prints progress lines while it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import platform
import secrets
import shutil
import socket
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "red_team_results.json"
MODEL_NAME = "digits"
TARGET = "zoo:digits-cnn"
DAY = 86400.0
HOUR = 3600.0
T0 = 1_790_000_000.0  # the simulated start (a Monday, 00:00 UTC, in 2026): far from the wall clock on purpose
N_EVAL = 200


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the simulated clock ---------------------------------------------------------------------------------------------
class SimClock:
    """Seconds since the epoch, as this script says: the gateway's ``clock``. Only ever moves forward."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def set(self, t: float) -> float:
        with self._lock:
            self._now = max(self._now, t)
            return self._now


# -- the gateway site ------------------------------------------------------------------------------------------------
def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def _write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def _merge(base: dict[str, dict[str, Any]], extra: dict[str, Any], prefix: str = "") -> None:
    """The tables of parsed TOML ``extra`` into ``base``, whose sections have flat names (``monitoring.watermark``)."""
    for key, value in extra.items():
        if isinstance(value, dict):
            _merge(base, value, f"{prefix}.{key}" if prefix else key)
        else:
            base.setdefault(prefix, {})[key] = value


@dataclass
class Site:
    root: Path
    config: Path
    admin_key: str
    keys: dict[str, str]  # client name -> secret
    features: dict[str, bool]  # what this checkout's gateway supports


def _supported_sections() -> set[str]:
    from modelshield.gateway.config import GatewayConfig

    return set(GatewayConfig.model_fields)


def build_site(
    root: Path, clients: Sequence[str], config_extra: str, overrides: dict[str, dict[str, Any]] | None = None
) -> Site:
    from modelshield.gateway.identity import KeyStore, Role
    from modelshield.supply_chain.keys import generate_keypair, load_private_key, write_keypair
    from modelshield.supply_chain.signing import sign_model
    from modelshield.zoo import load_target

    target = load_target(TARGET, device="cpu")
    assert target.model_path is not None
    private, _ = write_keypair(generate_keypair("ed25519"), root / "keys", name="publisher")
    write_keypair(generate_keypair("ed25519"), root / "keys", name="gateway")
    sign_model(target.model_path, load_private_key(private), root / "digits-cnn.sig")
    sections: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1"},
        "model": {
            "target": TARGET,
            "name": MODEL_NAME,
            "public_key": "keys/publisher.pub",
            "signature": "digits-cnn.sig",
        },
        "store": {"database": "sqlite:///gateway.db"},
        "auth": {"allow_anonymous": False},
        "limits": {"requests_per_second": 1e6, "rows_per_second": 1e9, "rows_per_day": 10**12, "max_batch_rows": 256},
        "validation": {"enabled": False},
        "output": {"default": "probabilities"},
        "guards": {"extraction_monitor": "off", "adversarial_detector": "off"},
        "audit": {"signing_key": "keys/gateway.key", "checkpoint_every": 5000},
    }
    supported = _supported_sections()
    features = {s: s in supported for s in ("monitoring", "response", "alerts")}
    if features["monitoring"]:
        sections["monitoring"] = {"enabled": True}
        watermark_key = root / "watermark.key"
        try:
            from modelshield.monitoring.watermark import WatermarkKey

            WatermarkKey.generate(watermark_key)
            sections["monitoring.watermark"] = {"rate": 0.02, "key": "watermark.key"}
            features["watermark"] = True
        except ImportError:
            features["watermark"] = False
    if features["alerts"]:
        sections["alerts"] = {"jsonl": "alerts.jsonl"}
    if features["response"]:
        sections["response"] = {}
    if config_extra:
        _merge(sections, tomllib.loads(config_extra))
    for section, values in (overrides or {}).items():
        sections.setdefault(section, {}).update(values)
    sections = {k: v for k, v in sections.items() if v or k == "response"}
    if "response" in sections and not sections["response"]:
        del sections["response"]  # the default policy
    config = root / "gateway.toml"
    _write_toml(config, sections)
    store = KeyStore(f"sqlite:///{root / 'gateway.db'}")
    try:
        admin_key, _ = store.create("red-team-admin", Role.ADMIN)
        keys = {c: store.create(c, Role.CLIENT)[0] for c in clients}
    finally:
        store.close()
    return Site(root, config, admin_key, keys, features)


@dataclass
class Running:
    url: str
    gateway: Any
    server: Any
    thread: threading.Thread
    clock_wired: bool

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.gateway.close()


def start_gateway(config: Path, clock: SimClock) -> Running:
    import uvicorn

    from modelshield.gateway.app import Gateway
    from modelshield.gateway.config import load_config

    wired = "clock" in inspect.signature(Gateway).parameters
    if wired:
        gateway = Gateway(load_config(config), start_watcher=False, clock=clock)
    else:
        say("WARNING: Gateway(...) takes no clock= here: the monitoring sees wall time, not the simulated days")
        gateway = Gateway(load_config(config), start_watcher=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            gateway.app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            gateway.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return Running(f"http://127.0.0.1:{port}", gateway, server, thread, wired)


# -- the wire --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    status: int
    proba: NDArray[np.float32] | None  # the released probabilities (None: refused, or labels only)
    labels: NDArray[np.int64] | None
    detail: str = ""

    @property
    def effect(self) -> str:
        """What the response did to this request: "" (nothing), "suspended/blocked", "throttled" or "label-only"."""
        if self.status == 403:
            return "refused-403"
        if self.status == 429:
            return "throttled-429"
        if self.status == 200 and self.proba is None:
            return "label-only"
        return ""


class Wire:
    """HTTP to the gateway: inference with a key, the admin API with the admin key."""

    def __init__(self, url: str, admin_key: str, settle: Callable[[], None] | None = None) -> None:
        import httpx

        self._client = httpx.Client(base_url=url, timeout=60.0)
        self._settle = settle or (lambda: None)
        self._admin = {"Authorization": f"Bearer {admin_key}"}
        self.sent = 0

    def infer(self, key: str, x: NDArray[np.float32]) -> Answer:
        self._settle()
        body = {
            "id": secrets.token_hex(6),
            "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
        }
        r = self._client.post(
            f"/v2/models/{MODEL_NAME}/infer",
            content=json.dumps(body, separators=(",", ":")),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        self.sent += 1
        if r.status_code != 200:
            try:
                detail = str(r.json().get("error", r.text))[:200]
            except ValueError:
                detail = r.text[:200]
            if r.status_code not in (403, 429):
                raise RuntimeError(f"the gateway answered {r.status_code}: {detail}")
            return Answer(r.status_code, None, None, detail)
        outputs = {o["name"]: o for o in r.json()["outputs"]}
        proba = labels = None
        if "probabilities" in outputs:
            o = outputs["probabilities"]
            proba = np.asarray(o["data"], np.float32).reshape(o["shape"])
        if "label" in outputs:
            labels = np.asarray(outputs["label"]["data"], np.int64)
        if proba is not None and labels is None:
            labels = proba.argmax(axis=1)
        return Answer(200, proba, labels)

    def admin(self, path: str, **params: Any) -> dict[str, Any] | None:
        """An admin API answer, or None when this gateway has no such route (before the integration)."""
        r = self._client.get(path, headers=self._admin, params=params)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def close(self) -> None:
        self._client.close()


def settle_hook(running: Running) -> Callable[[], None]:
    """Wait until the monitor has handled the alerts of the requests sent so far (at most 2 s).

    Live, an attacker's next request comes seconds later and the monitor's alert thread needs milliseconds; here
    requests follow each other within milliseconds of wall time, so without this wait the response would look
    slower than it is, in queries. It reads the monitor's queue (an internal of this process's gateway).
    """
    q = getattr(getattr(running.gateway, "monitor", None), "_queue", None)
    if q is None or not hasattr(q, "unfinished_tasks"):
        return lambda: None

    def settle() -> None:
        deadline = time.monotonic() + 2.0
        while q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.0002)

    return settle


# -- data ------------------------------------------------------------------------------------------------------------
@dataclass
class Data:
    train_x: NDArray[np.float32]
    train_y: NDArray[np.int64]
    held_x: NDArray[np.float32]
    held_y: NDArray[np.int64]
    eval_x: NDArray[np.float32]
    eval_y: NDArray[np.int64]
    base_x: NDArray[np.float32]  # train + held: what benign clients and in-distribution thieves draw from
    base_y: NDArray[np.int64]
    thief_pool: NDArray[np.float32]  # in-distribution, augmented
    ood_pool: NDArray[np.float32]  # MNIST at 8x8


def augment(x: NDArray[np.float32], rng: np.random.Generator, *, shift_p: float, noise: float) -> NDArray[np.float32]:
    """Mild, label-preserving changes: a 1-pixel shift (zero fill) with probability ``shift_p``, Gaussian noise."""
    out = x.copy()
    for i in np.flatnonzero(rng.random(len(x)) < shift_p):
        dy, dx = rng.integers(-1, 2, size=2)
        img = np.roll(out[i, 0], (int(dy), int(dx)), axis=(0, 1))
        if dy == 1:
            img[0, :] = 0
        elif dy == -1:
            img[-1, :] = 0
        if dx == 1:
            img[:, 0] = 0
        elif dx == -1:
            img[:, -1] = 0
        out[i, 0] = img
    if noise > 0:
        out = out + rng.normal(0.0, noise, size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def rescan(x: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    """The same handwriting scanned again: each ink pixel (the data are grey levels k/16) moves within its own grey
    level (uniform, ±1/32); blank pixels stay blank. In distribution by construction, and never an exact copy."""
    jitter = rng.uniform(-1 / 32, 1 / 32, size=x.shape).astype(np.float32)
    return np.where(x > 0, np.clip(x + jitter, 0.0, 1.0), 0.0).astype(np.float32)


def load_data(seed: int, pool_size: int) -> Data:
    from modelshield.attacks.extraction import resample_images
    from modelshield.data import load_bundled
    from modelshield.zoo import load_target

    target = load_target(TARGET, device="cpu")
    assert target.train is not None
    rng = np.random.default_rng([seed, 1])
    test_x, test_y = target.test.x.astype(np.float32), target.test.y.astype(np.int64)
    order = rng.permutation(len(test_x))
    ev, held = order[:N_EVAL], order[N_EVAL:]
    train_x, train_y = target.train.x.astype(np.float32), target.train.y.astype(np.int64)
    base_x = np.concatenate([train_x, test_x[held]])
    base_y = np.concatenate([train_y, test_y[held]])
    reps = math.ceil(pool_size / len(base_x))
    pool = rescan(np.concatenate([base_x] * reps), rng)
    pool = pool[rng.permutation(len(pool))[:pool_size]]
    mnist = load_bundled("mnist")
    ood = resample_images(mnist.x[rng.permutation(len(mnist.x))[:pool_size]], 8).astype(np.float32)
    return Data(
        train_x, train_y, test_x[held], test_y[held], test_x[ev], test_y[ev], base_x, base_y, pool,
        np.clip(ood, 0.0, 1.0).astype(np.float32),
    )  # fmt: skip


# -- benign traffic --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenignProfile:
    name: str
    rate_per_hour: float  # mean requests per hour over a day
    peak_hour: float  # UTC hour of the daily peak
    amplitude: float  # diurnal swing: the rate runs from (1 - a) to (1 + a) times the mean
    rows_mean: float  # mean rows per request
    max_rows: int
    class_weights: tuple[float, ...]
    style: str  # "clean" (rows of the data set as they are), "rescanned" (:func:`rescan`) or "noisy" (below)
    noise: float  # noisy: Gaussian sensor noise on every pixel
    shift_p: float  # noisy: share of images shifted by one pixel (another scanner's cropping)
    nightly_job: bool  # also sends a nightly batch job (40 requests of 32 rows at about 02:00 UTC)
    joins: float = 0.0  # simulated day (from the start) of the client's first request: a late joiner is a new key


def benign_profiles(n: int, seed: int, *, join_day: float | None = None) -> list[BenignProfile]:
    """``n`` clients from the start, and (``join_day`` not None) two more that join on that day: a batch client and
    an interactive one, new keys whose first day the ``new-key`` signal judges."""
    rng = np.random.default_rng([seed, 2])
    out = []
    for i in range(n):
        interactive = i % 3 != 2
        weights = rng.dirichlet(np.full(10, 2.0)) if i % 2 else np.full(10, 0.1)
        style = ("rescanned", "rescanned", "clean", "rescanned", "noisy")[i % 5]
        out.append(
            BenignProfile(
                name=f"benign-{i:02d}",
                rate_per_hour=float(np.clip(rng.lognormal(math.log(30), 0.6), 6, 150)),
                peak_hour=float(rng.uniform(0, 24)),
                amplitude=float(rng.uniform(0.2, 0.9)),
                rows_mean=1.3 if interactive else float(rng.uniform(4, 16)),
                max_rows=4 if interactive else 64,
                class_weights=tuple(float(w) for w in weights / weights.sum()),
                style=style,
                noise=float(rng.uniform(0.01, 0.03)) if style == "noisy" else 0.0,
                shift_p=float(rng.choice([0.1, 0.3])) if style == "noisy" else 0.0,
                nightly_job=i % 4 == 3,
            )
        )
    late = np.random.default_rng([seed, 5])  # its own stream: the first n clients do not change
    for j, (rows_mean, max_rows) in enumerate(((float(late.uniform(4, 16)), 64), (1.3, 4))) if join_day else ():
        out.append(
            BenignProfile(
                name=f"benign-late-{j}",
                rate_per_hour=float(np.clip(late.lognormal(math.log(30), 0.6), 6, 150)),
                peak_hour=float(late.uniform(0, 24)),
                amplitude=float(late.uniform(0.2, 0.9)),
                rows_mean=rows_mean,
                max_rows=max_rows,
                class_weights=tuple(float(w) for w in late.dirichlet(np.full(10, 2.0))),
                style="rescanned",
                noise=0.0,
                shift_p=0.0,
                nightly_job=False,
                joins=float(join_day),
            )
        )
    return out


@dataclass
class BenignEvents:
    t: NDArray[np.float64]
    client: NDArray[np.int64]
    rows: NDArray[np.int64]


def benign_events(profiles: Sequence[BenignProfile], start: float, end: float, seed: int) -> BenignEvents:
    """Each client's requests: a Poisson process whose rate follows its day (thinning), plus nightly jobs."""
    rng = np.random.default_rng([seed, 3])
    ts, cs, rs = [], [], []
    for c, p in enumerate(profiles):
        begin = max(start, T0 + p.joins * DAY)
        lam_max = p.rate_per_hour * (1 + p.amplitude) / HOUR
        n = rng.poisson(lam_max * (end - begin) * 1.2) + 10
        t = begin + np.cumsum(rng.exponential(1 / lam_max, size=n))
        t = t[t < end]
        hour = ((t - T0) / HOUR) % 24
        lam = p.rate_per_hour * (1 + p.amplitude * np.cos(2 * np.pi * (hour - p.peak_hour) / 24)) / HOUR
        t = t[rng.random(len(t)) < lam / lam_max]
        rows = np.minimum(1 + rng.poisson(p.rows_mean - 1, size=len(t)), p.max_rows)
        ts.append(t)
        cs.append(np.full(len(t), c))
        rs.append(rows)
        if p.nightly_job:
            day = math.floor((start - T0) / DAY)
            while T0 + day * DAY < end:
                begin = T0 + day * DAY + 2 * HOUR + rng.uniform(0, 1800)
                jt = begin + 10.0 * np.arange(40)
                keep = (jt >= start) & (jt < end)
                ts.append(jt[keep])
                cs.append(np.full(int(keep.sum()), c))
                rs.append(np.full(int(keep.sum()), 32))
                day += 1
    t_all = np.concatenate(ts)
    order = np.argsort(t_all, kind="stable")
    return BenignEvents(t_all[order], np.concatenate(cs)[order].astype(np.int64), np.concatenate(rs)[order])


class Traffic:
    """The benign clients' requests, sent in time order up to a given simulated time."""

    def __init__(
        self,
        wire: Wire,
        clock: SimClock,
        profiles: Sequence[BenignProfile],
        events: BenignEvents,
        keys: dict[str, str],
        data: Data,
        seed: int,
    ) -> None:
        self.wire, self.clock, self.profiles, self.events = wire, clock, list(profiles), events
        self.keys = [keys[p.name] for p in profiles]
        self.data = data
        self.rng = np.random.default_rng([seed, 4])
        self.weights = np.asarray([p.class_weights for p in profiles]).reshape(len(profiles), 10)
        self.by_class = [np.flatnonzero(data.base_y == k) for k in range(10)]
        self.order = [[np.empty(0, np.int64) for _ in range(10)] for _ in profiles]
        self.next = 0
        n = len(profiles)
        self.requests = np.zeros(n, np.int64)
        self.rows = np.zeros(n, np.int64)
        self.refused: list[dict[str, Any]] = []
        self.last_progress = time.monotonic()

    def pump(self, until: float) -> None:
        ev = self.events
        while self.next < len(ev.t) and ev.t[self.next] < until:
            i = self.next
            self.next += 1
            c = int(ev.client[i])
            p = self.profiles[c]
            idx = self.draw(c, int(ev.rows[i]))
            x = self.data.base_x[idx]
            if p.style == "rescanned":
                x = rescan(x, self.rng)
            elif p.style == "noisy":
                x = augment(x, self.rng, shift_p=p.shift_p, noise=p.noise)
            self.clock.set(float(ev.t[i]))
            answer = self.wire.infer(self.keys[c], x)
            self.requests[c] += 1
            self.rows[c] += len(x)
            if answer.effect:
                self.refused.append({"time": float(ev.t[i]), "client": p.name, "effect": answer.effect})
            if time.monotonic() - self.last_progress > 15:
                self.last_progress = time.monotonic()
                day = (float(ev.t[i]) - T0) / DAY
                say(f"  benign: {self.next:,}/{len(ev.t):,} requests sent (simulated day {day:.2f})")

    def draw(self, c: int, n: int) -> NDArray[np.int64]:
        """The next ``n`` images of client ``c``: classes drawn from its class mix, and within a class the client
        walks its own shuffle of that class's images, reshuffled when used up (no image twice before that)."""
        out = np.empty(n, np.int64)
        for j, k in enumerate(self.rng.choice(10, size=n, p=self.weights[c] / self.weights[c].sum())):
            if len(self.order[c][k]) == 0:
                self.order[c][k] = self.rng.permutation(self.by_class[k])
            out[j], self.order[c][k] = self.order[c][k][0], self.order[c][k][1:]
        return out

    @property
    def done(self) -> bool:
        return self.next >= len(self.events.t)


# -- the attacker's view of the gateway ------------------------------------------------------------------------------
class ResponseTookEffect(Exception):  # noqa: N818 - an outcome the attack loop stops on
    """The gateway's response reached the attacker (every key refused, throttled, or labels only)."""


@dataclass
class Effect:
    queries: int  # answered queries (rows) before the refused request
    time: float
    effect: str
    client: str


def make_victim(
    *,
    wire: Wire,
    clock: SimClock,
    traffic: Traffic,
    clients: Sequence[str],
    keys: dict[str, str],
    rows_per_request: int,
    gap_s: float,
    start: float,
    oracle: Any,
    oracle_x: NDArray[np.float32] | None,
    seed: int,
    labels_suffice: bool,
) -> Any:
    """A :class:`~modelshield.models.interface.Classifier` whose answers come from the gateway over HTTP.

    Each ``_predict_proba`` batch (at most ``rows_per_request`` rows: ``batch_size``) is one request, sent at the
    attacker's next simulated time (``gap_s`` apart, ±30% jitter) after the benign requests due before it; keys
    are used round-robin. A refused key (403) or a throttle (429) ends that key; so does an answer without
    probabilities, unless ``labels_suffice`` (attacks that work on labels: extraction then trains on one-hot
    answers, HopSkipJump and the label-only probe need nothing else). When every key has ended,
    :class:`ResponseTookEffect` is raised and the attack stops there (it is cut off). ``oracle_x`` (the
    evaluation rows an extraction measures fidelity on) is answered by ``oracle``, the model itself, without a
    request: it is the benchmark's yardstick, not the attacker's query.
    """
    from modelshield.models.interface import Bounds, Classifier

    class _Remote(Classifier):
        def __init__(self) -> None:
            super().__init__(
                n_classes=10, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0), batch_size=rows_per_request
            )
            self.clients = list(clients)
            self.alive = list(range(len(clients)))
            self.turn = 0
            self.t = start
            self.rng = np.random.default_rng([seed, 5])
            self.log_t: list[float] = []  # per answered request: its time and the answered rows after it
            self.log_rows: list[int] = []
            self.answered = 0
            self.x_parts: list[NDArray[np.float32]] = []
            self.p_parts: list[NDArray[np.float32]] = []
            self.first_effect: Effect | None = None
            self.final_effect: Effect | None = None
            self.refusals: list[dict[str, Any]] = []
            self.sample = -1  # evasion: which input the rows belong to
            self.owners: list[NDArray[np.int64]] = []

        def predict_proba(self, x: Any) -> Any:
            arr = np.asarray(x, np.float32)
            if oracle_x is not None and arr.shape == oracle_x.shape and np.array_equal(arr, oracle_x):
                return oracle.predict_proba(arr)
            return super().predict_proba(arr)

        def _predict_proba(self, x: Any) -> Any:
            x = np.asarray(x, np.float32)
            while self.alive:
                self.t += gap_s * float(self.rng.uniform(0.7, 1.3))
                traffic.pump(self.t)
                self.clock_set()
                k = self.alive[self.turn % len(self.alive)]
                self.turn += 1
                answer = wire.infer(keys[self.clients[k]], x)
                proba = answer.proba
                if answer.effect == "label-only" and labels_suffice and answer.labels is not None:
                    e = Effect(self.answered, self.t, answer.effect, self.clients[k])
                    if not any(r["effect"] == "label-only" for r in self.refusals):
                        self.refusals.append(asdict(e))
                    self.first_effect = self.first_effect or e
                    proba = np.eye(10, dtype=np.float32)[answer.labels]
                elif answer.effect:
                    e = Effect(self.answered, self.t, answer.effect, self.clients[k])
                    self.refusals.append(asdict(e))
                    self.first_effect = self.first_effect or e
                    self.alive.remove(k)
                    if not self.alive:
                        self.final_effect = e
                    continue
                assert proba is not None
                self.answered += len(x)
                self.log_t.append(self.t)
                self.log_rows.append(self.answered)
                self.x_parts.append(x.copy())
                self.p_parts.append(proba)
                self.owners.append(np.full(len(x), self.sample))
                return proba
            raise ResponseTookEffect(f"every key of {self.clients[0]}... was refused")

        def clock_set(self) -> None:
            clock.set(self.t)

        def queries_at(self, t: float) -> int:
            """Answered rows in requests sent at or before simulated time ``t``."""
            i = int(np.searchsorted(np.asarray(self.log_t), t, side="right"))
            return self.log_rows[i - 1] if i else 0

        def received(self) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]:
            if not self.x_parts:
                return (np.empty((0, 1, 8, 8), np.float32), np.empty((0, 10), np.float32), np.empty(0, np.int64))
            return np.concatenate(self.x_parts), np.concatenate(self.p_parts), np.concatenate(self.owners)

    return _Remote()


def make_recorder(model: Any) -> Any:
    """The model itself as a Classifier that keeps every query and answer (the undefended runs)."""
    from modelshield.models.interface import Classifier

    class _Recorder(Classifier):
        def __init__(self) -> None:
            super().__init__(n_classes=10, input_shape=(1, 8, 8), clip_values=model.clip_values, batch_size=4096)
            self.x_parts: list[NDArray[np.float32]] = []
            self.p_parts: list[NDArray[np.float32]] = []
            self.owners: list[NDArray[np.int64]] = []
            self.sample = -1
            self.recording = True

        def _predict_proba(self, x: Any) -> Any:
            p = np.asarray(model.predict_proba(x), np.float32)
            if self.recording:
                self.x_parts.append(np.asarray(x, np.float32).copy())
                self.p_parts.append(p)
                self.owners.append(np.full(len(x), self.sample))
            return p

        def received(self) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.int64]]:
            return np.concatenate(self.x_parts), np.concatenate(self.p_parts), np.concatenate(self.owners)

    return _Recorder()


def make_replay(x: NDArray[np.float32], p: NDArray[np.float32], oracle: Any) -> Any:
    """A Classifier that answers the rows an attacker received with the answers received (others: the model)."""
    from modelshield.models.interface import Classifier

    table = {row.tobytes(): ans for row, ans in zip(x, p, strict=True)}

    class _Replay(Classifier):
        def __init__(self) -> None:
            super().__init__(n_classes=10, input_shape=(1, 8, 8), clip_values=oracle.clip_values, batch_size=4096)

        def _predict_proba(self, xb: Any) -> Any:
            rows = np.asarray(xb, np.float32)
            got = [table.get(r.tobytes()) for r in rows]
            if all(g is not None for g in got):
                return np.stack([g for g in got if g is not None])
            return np.asarray(oracle.predict_proba(rows), np.float32)

    return _Replay()


# -- measuring what the attacker holds -------------------------------------------------------------------------------
@dataclass
class Copy:
    queries: int
    fidelity: float
    accuracy: float
    watermark_p: float | None = None
    watermark: dict[str, Any] = field(default_factory=dict)


def train_copy(
    x: NDArray[np.float32], p: NDArray[np.float32], oracle: Any, data: Data, seed: int
) -> tuple[Copy, Any] | None:
    """The attack's own surrogate recipe trained on exactly these answers; fidelity measured on ``eval``."""
    from modelshield.attacks.extraction import extract_model

    n = len(x)
    if n < 10:
        return None
    replay = make_replay(x, p, oracle)
    result = extract_model(
        replay, data.eval_x, data.eval_y, strategy="natural", natural_x=x, budgets=(n,), seed=seed, keep_queries=False
    )
    point = result.points[-1]
    return Copy(n, point.fidelity, point.surrogate_accuracy), result.surrogate


def evasion_progress(
    x: NDArray[np.float32],
    labels: NDArray[np.int64],
    owners: NDArray[np.int64],
    x0: NDArray[np.float32],
    y0: NDArray[np.int64],
    *,
    norm: str,
    eps: float,
) -> NDArray[np.int64]:
    """After each answered query, how many of the attacked inputs the attacker holds an adversarial example for:
    a queried row that the model labelled other than the true label, within ``eps`` of its input (``norm``)."""
    diff = (x - x0[owners]).reshape(len(x), -1)
    dist = np.abs(diff).max(axis=1) if norm == "linf" else np.linalg.norm(diff, axis=1)
    win = (labels != y0[owners]) & (dist <= eps + 1e-6) & (owners >= 0)
    held = np.zeros(len(x0), bool)
    out = np.zeros(len(x), np.int64)
    count = 0
    for i in np.flatnonzero(win):
        if not held[owners[i]]:
            held[owners[i]] = True
            count += 1
        out[i:] = count
    return out


# -- the legs --------------------------------------------------------------------------------------------------------
@dataclass
class LegSpec:
    name: str
    kind: str  # extraction | evasion | membership
    clients: list[str]
    rows_per_request: int
    gap_s: float
    strategy: str = ""
    pool: str = ""  # thief_pool | ood_pool
    note: str = ""
    seeds: int = 0  # jacobian: the natural seed inputs (answered before any synthetic query)


def leg_specs(quick: bool) -> list[LegSpec]:
    sybil = [f"sybil-{i:02d}" for i in range(20)]
    return [
        LegSpec("extract-random", "extraction", ["thief-random"], 16, 4.0, "random", "thief_pool",
                "synthetic: uniform noise in [0, 1]"),
        LegSpec("extract-jacobian", "extraction", ["thief-jacobian"], 16, 4.0, "jacobian", "thief_pool",
                "synthetic: Papernot augmentation from 100 natural seeds", seeds=100),
        LegSpec("extract-jacobian-10", "extraction", ["thief-jacobian-10"], 16, 4.0, "jacobian", "thief_pool",
                "synthetic: Papernot augmentation from 10 natural seeds", seeds=10),
        LegSpec("extract-ood", "extraction", ["thief-ood"], 16, 4.0, "natural", "ood_pool",
                "out-of-distribution natural data: MNIST at 8x8"),
        LegSpec("extract-natural", "extraction", ["thief-natural"], 8, 60.0, "natural", "thief_pool",
                "in-distribution data, one key, benign-like rate (60 requests/h of 8 rows)"),
        LegSpec("extract-sybil", "extraction", sybil, 5, 300.0 / len(sybil), "natural", "thief_pool",
                "in-distribution data round-robin over 20 keys, each 12 requests/h of 5 rows"),
        LegSpec("evasion-hsj", "evasion", ["prober-hsj"], 64, 1.0, "hsj", note="HopSkipJump (L2), labels only"),
        LegSpec("evasion-square", "evasion", ["prober-square"], 1, 0.5, "square", note="Square (L∞), scores"),
        LegSpec("membership-label-only", "membership", ["prober-membership"], 32, 2.0, "label-only",
                note="label-only membership probe (noise robustness)"),
    ]  # fmt: skip


@dataclass
class Settings:
    quick: bool
    seed: int
    days: float
    n_benign: int
    budgets: tuple[int, ...]
    evasion_samples: int
    evasion_queries: int
    square_eps: float
    hsj_l2: float
    membership_records: int
    membership_copies: int
    independent_models: int
    pool_size: int


class Bench:
    def __init__(self, settings: Settings, data: Data, oracle: Any) -> None:
        self.s = settings
        self.data = data
        self.oracle = oracle
        self.raw_curves: dict[str, NDArray[np.int64]] = {}  # evasion: inputs fooled after each undefended query

    # undefended -----------------------------------------------------------------------------------------------------
    def run_attack(self, spec: LegSpec, victim: Any) -> dict[str, Any]:
        """Run the leg's attack against ``victim`` (a recorder or the gateway); what it reports when it finishes."""
        from modelshield.attacks.evasion.blackbox import hop_skip_jump, square_attack
        from modelshield.attacks.extraction import extract_model
        from modelshield.attacks.membership.attacks import label_only_attack

        s, d = self.s, self.data
        if spec.kind == "extraction":
            pool = getattr(d, spec.pool)
            res = extract_model(
                victim, d.eval_x, d.eval_y, strategy=spec.strategy, budgets=s.budgets, natural_x=pool,
                seed=s.seed, keep_queries=False, jacobian_seed=spec.seeds or None,
            )  # fmt: skip
            return {
                "curve": [{"queries": pt.queries, "fidelity": pt.fidelity} for pt in res.points],
                "fidelity": res.points[-1].fidelity,
                "baseline_fidelity": res.baseline_fidelity,
                "surrogate": res.surrogate,
            }
        if spec.kind == "evasion":
            x0, y0 = self.evasion_inputs()
            for i in range(len(x0)):
                victim.sample = i
                if spec.strategy == "hsj":
                    hop_skip_jump(victim, x0[i : i + 1], y0[i : i + 1], max_queries=s.evasion_queries, seed=s.seed + i)
                else:
                    square_attack(
                        victim, x0[i : i + 1], y0[i : i + 1], eps=s.square_eps, max_queries=s.evasion_queries,
                        seed=s.seed + i,
                    )  # fmt: skip
            return {}
        xm, ym, member = self.membership_records()
        res = label_only_attack(
            victim, xm, ym, member, copies=s.membership_copies, noise_scales=(0.25, 0.5, 1.0), seed=s.seed
        )
        return {"auc": float(res.metrics()["auc"]), "queries": res.queries}

    def evasion_inputs(self) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        right = np.flatnonzero(self.oracle.predict(self.data.eval_x) == self.data.eval_y)
        pick = right[: self.s.evasion_samples]
        return self.data.eval_x[pick], self.data.eval_y[pick]

    def membership_records(self) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.bool_]]:
        k = self.s.membership_records // 2
        d = self.data
        x = np.concatenate([d.train_x[:k], d.held_x[:k]])
        y = np.concatenate([d.train_y[:k], d.held_y[:k]])
        return x, y, np.arange(len(x)) < k

    def evasion_curve(self, spec: LegSpec, x: Any, p: Any, owners: Any) -> NDArray[np.int64]:
        x0, y0 = self.evasion_inputs()
        if spec.strategy == "hsj":
            return evasion_progress(x, p.argmax(axis=1), owners, x0, y0, norm="l2", eps=self.s.hsj_l2)
        return evasion_progress(x, p.argmax(axis=1), owners, x0, y0, norm="linf", eps=self.s.square_eps)

    def undefended(self, spec: LegSpec) -> dict[str, Any]:
        rec = make_recorder(self.oracle)
        t = time.perf_counter()
        out = self.run_attack(spec, rec)
        out.pop("surrogate", None)
        x, p, owners = rec.received()
        out["queries"] = len(x) if spec.kind != "extraction" else int(out["curve"][-1]["queries"])
        if spec.kind == "evasion":
            curve = self.evasion_curve(spec, x, p, owners)
            n = self.s.evasion_samples
            out["success"] = float(curve[-1] / n) if len(curve) else 0.0
            marks = [q for q in (50, 100, 200, 500, 1000, 2000, 5000) if q < len(curve)]
            out["curve"] = [{"queries": q, "success": float(curve[q - 1] / n)} for q in marks]
            self.raw_curves[spec.name] = curve
            out["curve"].append({"queries": len(curve), "success": out["success"]})
        out["seconds"] = round(time.perf_counter() - t, 1)
        return out


# -- the run ---------------------------------------------------------------------------------------------------------
def alerts_for(alerts: Sequence[dict[str, Any]], clients: Sequence[str]) -> list[dict[str, Any]]:
    names = set(clients)
    return [a for a in alerts if names & ({a.get("client")} | set(a.get("clients") or ()))]


def fetch_alerts(wire: Wire, since: float) -> list[dict[str, Any]] | None:
    """Every stored alert raised after ``since`` (paged), oldest first; None when the gateway has no alerts API."""
    alerts: list[dict[str, Any]] = []
    seen: set[Any] = set()
    while True:
        got = wire.admin("/admin/alerts", since=since, limit=10_000)
        if got is None:
            return None
        page = [a for a in got.get("alerts", []) if a.get("id") not in seen]
        alerts.extend(page)
        seen.update(a.get("id") for a in page)
        if len(got.get("alerts", [])) < 10_000 or not page:
            break
        since = max(float(a.get("time", since)) for a in page)
    return sorted(alerts, key=lambda a: (float(a.get("time", 0.0)), a.get("id") or 0))


def prove(suspect: Any, running: Running, clients: Sequence[str] | None = None) -> dict[str, Any]:
    """The watermark's ownership test on ``suspect`` against the gateway's ledger (rows of ``clients``, or all)."""
    try:
        from modelshield.monitoring.watermark import prove_ownership

        result = prove_ownership(suspect, running.gateway.config.database_url, clients=clients)
    except Exception as exc:  # report what failed, keep the run going
        return {"p_value": None, "error": f"{type(exc).__name__}: {exc}"}
    out = {k: v for k, v in result.to_dict().items() if k != "clients"}
    out["p_value"] = float(result.p_value)
    return out


def run_leg(  # noqa: PLR0915 - one leg, start to finish
    bench: Bench,
    spec: LegSpec,
    undefended: dict[str, Any],
    *,
    wire: Wire,
    clock: SimClock,
    traffic: Traffic,
    site: Site,
    running: Running,
) -> dict[str, Any]:
    s = bench.s
    start = clock() + 600.0
    traffic.pump(start)
    clock.set(start)
    victim = make_victim(
        wire=wire, clock=clock, traffic=traffic, clients=spec.clients, keys=site.keys,
        rows_per_request=spec.rows_per_request, gap_s=spec.gap_s, start=start, oracle=bench.oracle,
        oracle_x=bench.data.eval_x if spec.kind == "extraction" else None, seed=s.seed + len(spec.name),
        labels_suffice=spec.strategy != "square",
    )  # fmt: skip
    t = time.perf_counter()
    finished: dict[str, Any] = {}
    stopped = False
    try:
        finished = bench.run_attack(spec, victim)
    except ResponseTookEffect:
        stopped = True
    end = victim.t
    x, p, owners = victim.received()
    out: dict[str, Any] = {
        "leg": spec.name,
        "kind": spec.kind,
        "note": spec.note,
        "clients": len(spec.clients),
        "rows_per_request": spec.rows_per_request,
        "requests_per_hour_per_key": round(HOUR / spec.gap_s / len(spec.clients), 1),
        "sim_start_day": round((start - T0) / DAY, 3),
        "sim_minutes": round((end - start) / 60, 1),
        "answered_queries": len(x),
        "stopped_by_response": stopped,
        "first_effect": asdict(victim.first_effect) if victim.first_effect else None,
        "final_effect": asdict(victim.final_effect) if victim.final_effect else None,
        "keys_refused": len(victim.refusals),
    }
    alerts = fetch_alerts(wire, since=start - 1.0)
    mine = alerts_for(alerts or [], spec.clients)
    mine = [a for a in mine if float(a.get("time", 0)) <= end + 1.0]
    out["detected"] = bool(mine)
    out["alerts"] = len(mine)
    out["admin_alerts_api"] = alerts is not None
    first_alert_q: int | None = None
    if mine:
        a = mine[0]
        first_alert_q = victim.queries_at(float(a["time"]))
        out["first_alert"] = {
            "queries": first_alert_q,
            "time_offset_s": round(float(a["time"]) - start, 1),
            "detector": a.get("detector"),
            "technique": a.get("technique"),
            "severity": a.get("severity"),
            "summary": str(a.get("summary", ""))[:200],
        }
        out["detectors"] = sorted({str(a.get("detector")) for a in mine})
        out["alert_list"] = [
            {
                "queries": victim.queries_at(float(b["time"])),
                "detector": b.get("detector"),
                "technique": b.get("technique"),
                "severity": b.get("severity"),
                "client": b.get("client"),
            }
            for b in mine[:10]
        ]
    incidents = wire.admin("/admin/incidents", limit=10_000)
    if incidents is not None:
        names = set(spec.clients)
        out["incidents"] = [
            {k: i.get(k) for k in ("id", "actor", "technique", "risk", "status")}
            for i in incidents.get("incidents", [])
            if names & ({i.get("actor")} | set(i.get("clients") or ()))
        ]
    effect_q = victim.first_effect.queries if victim.first_effect else None
    cutoff_q = victim.final_effect.queries if victim.final_effect else None
    out["queries_to_first_alert"] = first_alert_q
    out["queries_to_effect"] = effect_q
    out["queries_to_cutoff"] = cutoff_q
    if spec.kind == "extraction":
        und = undefended["fidelity"]
        out["undefended_fidelity"] = und
        points: dict[str, int] = {}
        if first_alert_q is not None:
            points["at_first_alert"] = first_alert_q
        if victim.first_effect is not None:
            points["at_effect"] = victim.first_effect.queries
        points["final"] = len(x)
        if spec.seeds:  # what the natural seeds alone give, before any synthetic query
            points["seeds_only"] = min(spec.seeds, len(x))
        copies: dict[str, Any] = {}
        done: dict[int, tuple[Copy, Any]] = {}
        for label, q in points.items():
            if q not in done:
                got = train_copy(x[:q], p[:q], bench.oracle, bench.data, s.seed)
                if got is None:
                    copies[label] = {"queries": q, "fidelity": None}
                    continue
                done[q] = got
                copy, model = got
                if site.features.get("watermark"):
                    copy.watermark = prove(model, running, spec.clients)
                    copy.watermark_p = copy.watermark.get("p_value")
            copies[label] = asdict(done[q][0])
            curve = undefended["curve"]
            copies[label]["undefended_at_same_queries"] = round(
                float(
                    np.interp(
                        q,
                        [0] + [c["queries"] for c in curve],
                        [undefended["baseline_fidelity"]] + [c["fidelity"] for c in curve],
                    )
                ),
                3,
            )
        out["copies"] = copies
        at = copies.get("final")
        if at and at.get("fidelity") is not None:
            out["fidelity_share_of_undefended"] = round(at["fidelity"] / und, 3) if und else None
    elif spec.kind == "evasion":
        n = s.evasion_samples
        curve = bench.evasion_curve(spec, x, p, owners) if len(x) else np.zeros(0, np.int64)

        def at(q: int | None) -> float | None:
            if q is None:
                return None
            return float(curve[q - 1] / n) if q > 0 and len(curve) else 0.0

        out["undefended_success"] = undefended["success"]
        raw = bench.raw_curves.get(spec.name, np.zeros(0, np.int64))

        def undefended_at(q: int | None) -> float | None:
            if q is None:
                return None
            return float(raw[min(q, len(raw)) - 1] / n) if q > 0 and len(raw) else 0.0

        out["undefended_success_at_first_alert"] = undefended_at(first_alert_q)
        out["undefended_success_at_effect"] = undefended_at(effect_q)
        out["undefended_success_at_end"] = undefended_at(len(x))
        out["success_at_first_alert"] = at(first_alert_q)
        out["success_at_effect"] = at(effect_q)
        out["success_final"] = float(curve[-1] / n) if len(curve) else 0.0
    else:
        out["undefended_auc"] = undefended["auc"]
        out["finished"] = not stopped
        out["auc"] = finished.get("auc")
    out["seconds"] = round(time.perf_counter() - t, 1)
    det = f"detected after {first_alert_q} queries" if out["detected"] else "NOT detected"
    eff = f"response took effect after {effect_q}" if effect_q is not None else "no response took effect"
    eff += f", cut off after {cutoff_q}" if cutoff_q is not None else ", not cut off"
    say(f"  {spec.name}: {det}; {eff}; {len(x)} answered; {out['seconds']} s")
    return out


def independent_models(data: Data, n: int, seed: int) -> list[tuple[str, Any]]:
    """Models trained on true labels, never on the gateway's answers: half the thieves' surrogate architecture
    (:func:`~modelshield.attacks.extraction.fit_surrogate` on a label oracle), half scikit-learn families."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    from modelshield.attacks.extraction import fit_surrogate
    from modelshield.models import SklearnClassifier
    from modelshield.models.interface import Bounds, Classifier

    x_all, y_all = data.base_x, data.base_y
    table = {row.tobytes(): int(y) for row, y in zip(x_all, y_all, strict=True)}

    class _Labels(Classifier):
        def _predict_proba(self, xb: Any) -> Any:
            return np.eye(10, dtype=np.float32)[[table[r.tobytes()] for r in np.asarray(xb, np.float32)]]

        @property
        def label_only(self) -> bool:
            return True

    rng = np.random.default_rng([seed, 6])
    models: list[tuple[str, Any]] = []
    n_torch = n // 2
    for i in range(n_torch):
        idx = rng.choice(len(x_all), size=int(0.7 * len(x_all)), replace=False)
        oracle = _Labels(n_classes=10, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))
        models.append((f"surrogate-arch-{i}", fit_surrogate(oracle, x_all[idx], seed=seed + 100 + i)))
    makers: list[Callable[[int], Any]] = [
        lambda s: LogisticRegression(max_iter=2000, C=0.5 + s % 3),
        lambda s: MLPClassifier(hidden_layer_sizes=(64 + 32 * (s % 3),), max_iter=400, random_state=s),
        lambda s: RandomForestClassifier(n_estimators=100, random_state=s),
        lambda s: ExtraTreesClassifier(n_estimators=100, random_state=s),
        lambda s: KNeighborsClassifier(n_neighbors=3 + 2 * (s % 3)),
    ]
    for i in range(n - n_torch):
        idx = rng.choice(len(x_all), size=int(0.7 * len(x_all)), replace=False)
        est = makers[i % len(makers)](seed + i).fit(x_all[idx].reshape(len(idx), -1), y_all[idx])
        models.append(
            (
                f"sklearn-{type(est).__name__}-{i}",
                SklearnClassifier(est, input_shape=(1, 8, 8), clip_values=Bounds(0, 1)),
            )
        )
    return models


def watermark_leg(bench: Bench, args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], Running | None]:
    """A copy stolen with exactly ``budgets[-1]`` in-distribution queries from a gateway whose response is off (so
    nothing cuts the thief short), and the ownership proof on it: the watermark measured on its own."""
    s = bench.s
    site = build_site(root, ["wm-thief"], args.config_extra, overrides={"response": {"enabled": False}})
    if not site.features.get("watermark"):
        return {"error": "no watermark in this gateway"}, None
    clock = SimClock(T0)
    running = start_gateway(site.config, clock)
    wire = Wire(running.url, site.admin_key, settle_hook(running))
    none = BenignEvents(np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64))
    traffic = Traffic(wire, clock, [], none, site.keys, bench.data, s.seed)
    victim = make_victim(
        wire=wire, clock=clock, traffic=traffic, clients=["wm-thief"], keys=site.keys, rows_per_request=8,
        gap_s=60.0, start=T0, oracle=bench.oracle, oracle_x=bench.data.eval_x, seed=s.seed, labels_suffice=True,
    )  # fmt: skip
    from modelshield.attacks.extraction import extract_model

    try:
        extract_model(
            victim, bench.data.eval_x, bench.data.eval_y, strategy="natural", budgets=(s.budgets[-1],),
            natural_x=bench.data.thief_pool[::-1].copy(), seed=s.seed + 7, keep_queries=False,
        )  # fmt: skip
    except ResponseTookEffect:
        pass
    finally:
        wire.close()
    x, p, _ = victim.received()
    out: dict[str, Any] = {"queries": len(x), "refused": victim.first_effect is not None}
    got = train_copy(x, p, bench.oracle, bench.data, s.seed)
    if got is not None:
        copy, model = got
        out["fidelity"] = copy.fidelity
        out["proof"] = prove(model, running, ["wm-thief"])
        out["p_value"] = out["proof"].get("p_value")
    return out, running


def watermark_controls(
    bench: Bench, legs: Sequence[dict[str, Any]], running: Running, args: argparse.Namespace, settings: Settings
) -> dict[str, Any]:
    """The proof on a 2,000-query copy (response off), and on independently trained models: each tested against
    every ledger selection a thief was tested against (the main gateway's whole ledger, each in-distribution
    thief's rows, and the response-off gateway's thief); a proof on any of them is a false proof."""
    say("watermark: a copy stolen with the full budget from a gateway with the response off")
    with workdir(args.keep) as root:
        wm, wm_running = watermark_leg(bench, args, root)
        say(f"  {wm.get('queries')} queries, fidelity {wm.get('fidelity')}, proof p = {wm.get('p_value')}")
        say(f"watermark controls: {settings.independent_models} independently trained models")
        selections: list[tuple[str, Running, list[str] | None]] = [("main ledger, all clients", running, None)]
        for leg in legs:
            if leg["leg"] in ("extract-natural", "extract-sybil"):
                spec = next(s for s in leg_specs(settings.quick) if s.name == leg["leg"])
                selections.append((f"main ledger, {leg['leg']}", running, spec.clients))
        if wm_running is not None:
            selections.append(("response-off ledger, its thief", wm_running, ["wm-thief"]))
        models = []
        try:
            for name, model in independent_models(bench.data, settings.independent_models, settings.seed):
                tests = {}
                for label, where, clients in selections:
                    tests[label] = prove(model, where, clients).get("p_value")
                models.append({"model": name, "p_values": tests, "p_value": min(
                    (v for v in tests.values() if v is not None), default=None)})  # fmt: skip
        finally:
            if wm_running is not None:
                wm_running.stop()
    false = sum(1 for m in models if m["p_value"] is not None and m["p_value"] < 0.001)
    say(f"  false proofs: {false} of {len(models)} models ({len(selections)} ledger selections each)")
    return {
        "proof_2000": {"leg": "extract-natural, response off", **wm},
        "models": models,
        "selections": [label for label, _, _ in selections],
        "false_proofs": false,
    }


def benign_summary(
    profiles: Sequence[BenignProfile], traffic: Traffic, alerts: Sequence[dict[str, Any]], start: float, end: float
) -> dict[str, Any]:
    days = max(1, math.ceil((end - start) / DAY - 1e-9))
    names = [p.name for p in profiles]
    grid = np.zeros((len(names), days), np.int64)
    detail = []
    duplicates = 0
    for a in alerts:
        if a.get("suppressed"):
            duplicates += 1
            continue
        involved = {a.get("client")} | set(a.get("clients") or ())
        for c, name in enumerate(names):
            if name in involved:
                d = min(days - 1, max(0, int((float(a["time"]) - start) // DAY)))
                grid[c, d] += 1
                detail.append({k: a.get(k) for k in ("time", "client", "detector", "technique", "severity", "summary")})
    span = [(end - max(start, T0 + p.joins * DAY)) / HOUR for p in profiles]  # each client's hours from its first day
    hours = float(sum(span))
    false_alerts = int(grid.sum())
    by_style: dict[str, dict[str, float]] = {}
    for c, prof in enumerate(profiles):
        entry = by_style.setdefault(prof.style, {"clients": 0, "client_hours": 0.0, "false_alerts": 0})
        entry["clients"] += 1
        entry["client_hours"] += span[c]
        entry["false_alerts"] += int(grid[c].sum())
    for entry in by_style.values():
        entry["per_1000_client_hours"] = round(1000 * entry["false_alerts"] / entry["client_hours"], 3)
        entry["client_hours"] = round(entry["client_hours"], 1)
    after_first = int(grid[:, 1:].sum())
    hours_after = float(sum(max(0.0, (end - max(start + DAY, T0 + p.joins * DAY)) / HOUR) for p in profiles))
    # exact one-sided 95% upper bound on a Poisson rate with k events (chi-square quantile via scipy)
    from scipy.stats import chi2

    upper = float(chi2.ppf(0.95, 2 * (false_alerts + 1)) / 2)
    return {
        "clients": [asdict(p) for p in profiles],
        "requests": {n: int(r) for n, r in zip(names, traffic.requests, strict=True)},
        "rows": {n: int(r) for n, r in zip(names, traffic.rows, strict=True)},
        "rows_per_hour": {n: round(float(r) / h, 1) for n, r, h in zip(names, traffic.rows, span, strict=True)},
        "client_hours": round(hours, 1),
        "false_alerts": false_alerts,
        "false_alerts_per_1000_client_hours": round(1000 * false_alerts / hours, 3) if hours else None,
        "upper95_per_1000_client_hours": round(1000 * upper / hours, 3) if hours else None,
        "per_client_day": {n: grid[c].tolist() for c, n in enumerate(names)},
        "by_style": by_style,
        "after_first_day": {
            "false_alerts": after_first,
            "client_hours": round(hours_after, 1),
            "per_1000_client_hours": round(1000 * after_first / hours_after, 3) if hours_after else None,
        },
        "alerts": detail[:200],
        "suppressed_duplicates_not_counted": duplicates,
        "by_detector": {
            k: sum(1 for a in detail if a["detector"] == k) for k in sorted({str(a["detector"]) for a in detail})
        },
        "benign_requests_refused": len(traffic.refused),
        "refused_by_client": {
            n: {
                "requests": sum(1 for r in traffic.refused if r["client"] == n),
                "first_day": min(
                    (round((r["time"] - start) / DAY, 2) for r in traffic.refused if r["client"] == n), default=None
                ),
                "effects": sorted({r["effect"] for r in traffic.refused if r["client"] == n}),
            }
            for n in names
        },
        "refusals": traffic.refused[:20],
    }


def markdown(result: dict[str, Any]) -> str:  # noqa: PLR0915 - tables
    lines = [f"# Red-team replay ({result['started']}, {'quick' if result['settings']['quick'] else 'full'} run)", ""]
    feats = result["gateway_features"]
    lines.append(
        "Gateway: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in feats.items())
        + f"; simulated clock wired: {'yes' if result['clock_wired'] else 'NO'}; admin alerts API: "
        + ("yes" if result["admin_alerts_api"] else "NO")
    )  # fmt: skip
    lines += ["", "| leg | detected | queries to 1st alert | queries to effect (how) | attacker then | undefended |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for leg in result["legs"]:
        eff = leg["first_effect"]
        how = f"{leg['queries_to_effect']} ({eff['effect']})" if eff else "none"
        fin = leg["final_effect"]
        if fin and (fin != eff or leg["clients"] > 1):
            keys = f"all {leg['clients']} keys " if leg["clients"] > 1 else ""
            how += f"; {keys}cut off after {fin['queries']} ({fin['effect']})"
        elif fin:
            how += ", cut off there"
        else:
            how += f"; not cut off ({leg['answered_queries']} answered)"
        if leg["kind"] == "extraction":
            c = leg["copies"]
            parts = []
            names = {"seeds_only": "on the seeds alone", "final": "at end"}
            for label in ("seeds_only", "at_first_alert", "at_effect", "final"):
                if label in c and c[label].get("fidelity") is not None:
                    wm = c[label].get("watermark_p")
                    parts.append(
                        f"{names.get(label, label.replace('_', ' '))}: fid {c[label]['fidelity']:.2f}"
                        + (f", wm p={wm:.2g}" if wm is not None else "")
                    )
            then = "; ".join(parts)
            und = f"fid {leg['undefended_fidelity']:.2f} at {result['settings']['budgets'][-1]}"
            ref = c.get("final")
            if ref and ref.get("undefended_at_same_queries") is not None:
                und += f"; {ref['undefended_at_same_queries']:.2f} at {ref['queries']}"
        elif leg["kind"] == "evasion":
            sa, se = leg["success_at_first_alert"], leg["success_at_effect"]
            shown = [f"success at alert {sa:.2f}"] if sa is not None else []
            if se is not None:
                shown.append(f"at effect {se:.2f}")
            shown.append(f"at end {leg['success_final']:.2f}")
            then = ", ".join(shown)
            und = f"success {leg['undefended_success']:.2f}"
            ua = leg.get("undefended_success_at_end")
            if ua is not None:
                und += f"; {ua:.2f} at the attacker's end"
        else:
            then = f"finished: {leg['finished']}" + (f", AUC {leg['auc']:.2f}" if leg.get("auc") is not None else "")
            und = f"AUC {leg['undefended_auc']:.2f}"
        lines.append(
            f"| {leg['leg']} | {'yes' if leg['detected'] else 'NO'} | {leg['queries_to_first_alert']} | {how} | "
            f"{then} | {und} |"
        )
    b = result["benign"]
    n_days = len(next(iter(b["per_client_day"].values()), []))
    lines += [
        "",
        (
            f"Benign: {len(b['clients'])} clients, {b['client_hours']:.0f} client-hours, "
            f"{sum(b['requests'].values()):,} requests; false alerts {b['false_alerts']} "
            f"({b['false_alerts_per_1000_client_hours']} per 1,000 client-hours; 95% upper bound "
            f"{b['upper95_per_1000_client_hours']}); benign requests refused {b['benign_requests_refused']}."
        ),
        "",
        "By style: "
        + "; ".join(
            f"{k}: {v['false_alerts']} in {v['client_hours']:.0f} client-hours" for k, v in b["by_style"].items()
        )
        + f". After the first day: {b['after_first_day']['false_alerts']} in "
        + f"{b['after_first_day']['client_hours']:.0f} client-hours.",
        "",
        "Model-level alerts (no client named): "
        + (", ".join(f"{k} {v}" for k, v in b.get("model_level_alert_counts", {}).items()) or "none")
        + ".",
        "",
        "False alerts per client-day; refused: the client's requests the response refused (from day):",
        "",
        "| client | style | requests/h | rows/request | "
        + " | ".join(f"day {d}" for d in range(n_days))
        + " | refused |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in range(n_days)) + " | --- |",
    ]  # fmt: skip
    for p in b["clients"]:
        row = b["per_client_day"][p["name"]]
        lines.append(
            f"| {p['name']} | {p['style']} | {p['rate_per_hour']:.0f} | {p['rows_mean']:.1f} | "
            + " | ".join(map(str, row))
            + f" | {refused_cell(b, p['name'])} |"
        )
    wm = result.get("watermark_controls")
    if wm:
        ps = [m["p_value"] for m in wm["models"] if m.get("p_value") is not None]
        lines += [
            "",
            f"Watermark controls: {len(wm['models'])} independently trained models, false proofs (p < 0.001): "
            f"{wm['false_proofs']}; smallest p {min(ps):.3g}"
            if ps
            else "Watermark controls: no p-values",
        ]
        p2 = wm.get("proof_2000") or {}
        if p2:
            pr = p2.get("proof") or {}
            lines.append(
                f"Proof on a copy stolen with {p2.get('queries')} queries (response off): fidelity "
                f"{p2.get('fidelity')}, p = {p2.get('p_value')} ({pr.get('summary', pr.get('error', ''))})"
            )
    t = result["targets"]
    lines += ["", "| target | met | detail |", "| --- | --- | --- |"]
    for name, v in t.items():
        lines.append(f"| {name} | {'yes' if v['met'] else 'NO'} | {v['detail']} |")
    return "\n".join(lines) + "\n"


def refused_cell(benign: dict[str, Any], name: str) -> str:
    r = benign.get("refused_by_client", {}).get(name) or {}
    return f"{r['requests']} (day {r['first_day']})" if r.get("requests") else "0"


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    legs = {leg["leg"]: leg for leg in result["legs"]}
    out: dict[str, dict[str, Any]] = {}
    missed = [n for n, leg in legs.items() if not leg["detected"]]
    out["every attack detected"] = {"met": not missed, "detail": f"missed: {missed}" if missed else "all"}
    synth = [n for n in ("extract-random", "extract-jacobian", "extract-jacobian-10", "extract-ood") if n in legs]
    bad: list[str] = []
    shown: list[str] = []
    for n in synth:
        leg = legs[n]
        c = leg["copies"].get("final") or {}
        fid, und = c.get("fidelity"), leg["undefended_fidelity"]
        how = f"cut off after {leg['queries_to_cutoff']}" if leg["final_effect"] else "not cut off"
        shown.append(f"{n}: {how}, copy at end {fid} vs 0.8 x {und:.3f}")
        if fid is not None and fid < 0.8 * und:
            continue
        seeds = (leg["copies"].get("seeds_only") or {}).get("fidelity")
        if fid is not None and seeds is not None and und > seeds:
            # the natural seeds are answered like any client's natural queries, and a copy trained on them alone
            # may pass the bar already: what the response can hold back is what the synthetic queries add
            share = (fid - seeds) / (und - seeds)
            shown[-1] += (f" (its natural seeds alone give {seeds}; the synthetic queries added {max(share, 0.0):.0%} "
                          "of what they add undefended)")  # fmt: skip
            if share < 0.8:
                continue
        bad.append(n)
    out["synthetic/OOD extraction kept below 80% of undefended fidelity"] = {
        "met": not bad, "detail": "; ".join(shown)
    }  # fmt: skip
    thieves = [legs[n] for n in ("extract-natural", "extract-sybil") if n in legs]
    det = []
    ok = True
    for leg in thieves:
        # the copy the thief holds (it goes on after the alert unless the response stops it) must be proved ours;
        # the copy at the alert is reported beside it
        c = leg["copies"].get("at_first_alert") or {}
        proof = c.get("watermark_p")
        end = leg["copies"].get("final") or {}
        ok &= leg["detected"] and end.get("watermark_p") is not None and end["watermark_p"] < 0.001
        det.append(f"{leg['leg']}: alert {'yes' if leg['detected'] else 'no'}, fid at alert {c.get('fidelity')}, "
                   f"wm p at alert {proof}; at end fid {end.get('fidelity')}, "
                   f"wm p {end.get('watermark_p')}")  # fmt: skip
    out["in-distribution thieves alerted, copy proven ours"] = {"met": ok and bool(thieves), "detail": "; ".join(det)}
    ev = [legs[n] for n in ("evasion-hsj", "evasion-square") if n in legs]
    late = [f"{e['leg']}: {e['queries_to_first_alert']}" for e in ev
            if e["queries_to_first_alert"] is None or e["queries_to_first_alert"] > 200]  # fmt: skip
    out["evasion probing detected within 200 queries"] = {"met": not late, "detail": "; ".join(late) or "both"}
    b = result["benign"]
    rate = b["false_alerts_per_1000_client_hours"]
    out["<= 1 false alert per 1,000 benign client-hours"] = {
        "met": rate is not None and rate <= 1.0,
        "detail": f"{b['false_alerts']} in {b['client_hours']:.0f} client-hours (95% upper bound "
        f"{b['upper95_per_1000_client_hours']} per 1,000)",
    }
    wm = result.get("watermark_controls") or {}
    p2000 = wm.get("proof_2000")
    met = bool(p2000) and (p2000.get("queries") or 0) >= 2000 and (p2000.get("p_value") or 1.0) < 0.001
    out["watermark proof p < 0.001 on a 2,000-query copy"] = {
        "met": met,
        "detail": f"{p2000.get('queries')} queries, fidelity {p2000.get('fidelity')}, p = {p2000.get('p_value')}"
        if p2000
        else "not measured",
    }
    out["no false proof on 20 independent models"] = {
        "met": bool(wm.get("models")) and wm.get("false_proofs") == 0 and len(wm["models"]) >= 20,
        "detail": f"{wm.get('false_proofs')} of {len(wm.get('models', []))}",
    }
    return out


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="red-team-"))
    try:
        yield root
    finally:
        if keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:  # noqa: PLR0915 - argument handling, then the run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON results (Markdown next to it)")
    parser.add_argument(
        "--quick", action="store_true", help="a short run (about 3 minutes): fewer days, clients, queries"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--days", type=float, default=None, help="simulated benign days before the attacks (5; quick 1)"
    )
    parser.add_argument("--benign-clients", type=int, default=None, help="benign clients (12; quick 6)")
    parser.add_argument("--legs", default="", help="comma-separated subset of the attack legs")
    parser.add_argument("--hsj-l2", type=float, default=1.5, help="HopSkipJump success: an adversarial within this L2")
    parser.add_argument("--square-eps", type=float, default=0.15, help="Square attack's L∞ radius")
    parser.add_argument("--config-extra", default="", help="TOML merged into the gateway configuration")
    parser.add_argument("--no-controls", action="store_true", help="skip the 20 independent watermark controls")
    parser.add_argument("--keep", action="store_true", help="keep the gateway directory")
    args = parser.parse_args()
    q = args.quick
    settings = Settings(
        quick=q,
        seed=args.seed,
        days=args.days if args.days is not None else (1.0 if q else 5.0),
        n_benign=args.benign_clients or (6 if q else 12),
        budgets=(250, 500, 1000) if q else (250, 500, 1000, 2000),
        evasion_samples=3 if q else 5,
        evasion_queries=500 if q else 1000,
        square_eps=args.square_eps,
        hsj_l2=args.hsj_l2,
        membership_records=20 if q else 40,
        membership_copies=4 if q else 8,
        independent_models=6 if q else 20,
        pool_size=2400,
    )
    import torch

    torch.set_num_threads(1)  # a program, not the library: tiny nets train fastest on one thread
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t_run = time.perf_counter()
    load_before = [round(v, 2) for v in os.getloadavg()]
    say(f"red-team replay ({'quick' if q else 'full'}); load average {load_before}")
    from modelshield.zoo import load_target

    oracle = load_target(TARGET, device="cpu").classifier
    data = load_data(settings.seed, settings.pool_size)
    bench = Bench(settings, data, oracle)
    specs = leg_specs(q)
    if args.legs:
        wanted = set(args.legs.split(","))
        specs = [s for s in specs if s.name in wanted]

    say("undefended runs (the attacks against the model itself)")
    undefended: dict[str, dict[str, Any]] = {}
    for spec in specs:
        undefended[spec.name] = bench.undefended(spec)
        u = undefended[spec.name]
        shown = {k: v for k, v in u.items() if k in ("fidelity", "success", "auc", "queries", "seconds")}
        say(f"  {spec.name}: {shown}")

    profiles = benign_profiles(settings.n_benign, settings.seed, join_day=settings.days / 2)
    clients = [p.name for p in profiles] + sorted({c for s in specs for c in s.clients})
    clock = SimClock(T0)
    with workdir(args.keep) as root:
        site = build_site(root, clients, args.config_extra)
        say(f"gateway site in {root}; features {site.features}")
        running = start_gateway(site.config, clock)
        wire = Wire(running.url, site.admin_key, settle_hook(running))
        try:
            attack_span = sum(
                (settings.budgets[-1] if s.kind == "extraction" else 2000) / s.rows_per_request * s.gap_s * 1.3 + 600
                for s in specs
            )
            benign_end = T0 + settings.days * DAY + attack_span + HOUR
            events = benign_events(profiles, T0, benign_end, settings.seed)
            traffic = Traffic(wire, clock, profiles, events, site.keys, data, settings.seed)
            say(f"benign mix: {len(profiles)} clients, {len(events.t):,} requests over {(benign_end - T0) / DAY:.2f} "
                f"simulated days; first {settings.days:g} days alone")  # fmt: skip
            t_b = time.perf_counter()
            traffic.pump(T0 + settings.days * DAY)
            say(f"  baseline days done: {traffic.next:,} requests in {time.perf_counter() - t_b:.0f} s")
            legs = []
            for spec in specs:
                say(f"leg {spec.name} ({spec.note})")
                legs.append(
                    run_leg(bench, spec, undefended[spec.name], wire=wire, clock=clock, traffic=traffic, site=site,
                            running=running)
                )  # fmt: skip
            say("the rest of the benign traffic")
            traffic.pump(benign_end)
            clock.set(benign_end)
            all_alerts = fetch_alerts(wire, since=T0 - 1.0)
            attackers = {c for s in specs for c in s.clients}
            benign = benign_summary(profiles, traffic, all_alerts or [], T0, benign_end)
            known = attackers | {p.name for p in profiles}
            other = [a for a in all_alerts or [] if not ({a.get("client")} | set(a.get("clients") or ())) & known]
            counted = [a for a in other if not a.get("suppressed")]
            benign["model_level_alert_counts"] = {
                k: sum(1 for a in counted if a.get("detector") == k)
                for k in sorted({str(a.get("detector")) for a in counted})
            }
            benign["model_level_alerts"] = [
                {k: a.get(k) for k in ("time", "client", "detector", "technique", "severity", "summary")}
                for a in other
                if not a.get("suppressed")
            ][:100]
            say(f"  benign: {benign['false_alerts']} false alerts in {benign['client_hours']:.0f} client-hours")

            controls: dict[str, Any] | None = None
            if site.features.get("watermark") and not args.no_controls:
                controls = watermark_controls(bench, legs, running, args, settings)
            result: dict[str, Any] = {
                "started": started,
                "seconds": round(time.perf_counter() - t_run, 1),
                "load_before": load_before,
                "load_after": [round(v, 2) for v in os.getloadavg()],
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "settings": asdict(settings),
                "gateway_features": site.features,
                "clock_wired": running.clock_wired,
                "admin_alerts_api": all_alerts is not None,
                "config": site.config.read_text(encoding="utf-8"),
                "undefended": undefended,
                "legs": legs,
                "benign": benign,
                "watermark_controls": controls,
                "http_requests": wire.sent,
            }
            result["targets"] = targets(result)
        finally:
            wire.close()
            running.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    say(f"wrote {args.out} and {args.out.with_suffix('.md')} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
