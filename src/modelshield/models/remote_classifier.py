"""Black-box adapter for a model served over HTTP with the Open Inference Protocol v2 (KServe, Triton, MLServer).

    >>> from modelshield.models.remote_classifier import connect
    >>> clf = connect("http://127.0.0.1:8080", "fraud", input_shape=(30,), n_classes=2,  # doctest: +SKIP
    ...               input_name="x", output_name="predict_proba", headers={"Authorization": "Bearer ..."})
    >>> clf.label_only, clf.predict_proba(x)  # doctest: +SKIP

:func:`connect` is the way in for a served model: it checks the URL, then asks the server whether it is ready,
reads the model's metadata and sends one probe inference, and raises one clear error for an unreachable server,
refused credentials, an unknown model, a wrong input or output name, an answer that is neither class scores nor
labels, or a model that does not fit the data. :class:`RemoteClassifier` itself takes everything it needs as
arguments (reading what is missing from the metadata) and sends no probe.

Inference is ``POST /v2/models/{name}/infer`` with the batch as one FP32 tensor, and the output is requested by
name in every request (MLServer's scikit-learn runtime answers ``predict_proba`` with probabilities and
``predict`` with labels). An output of shape ``(n, classes)`` holds probabilities or logits; an output of shape
``(n,)`` or ``(n, 1)`` holding integers or strings holds labels, and the classifier is then label-only
(:attr:`~modelshield.models.interface.Classifier.label_only`): it gives one-hot rows, and checks that need
scores are skipped. Integer labels are class indices; string labels are looked up in ``classes``. Every response
is checked against the protocol: status, JSON, output name, shape, length, values. Header values (tokens) never
appear in errors, logs or reprs.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self
from urllib.parse import quote, urlsplit

import httpx
import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError, RemoteModelError
from modelshield.models.interface import Bounds, Classifier, FloatArray, IntArray

__all__ = ["Output", "RemoteClassifier", "connect"]

log = logging.getLogger(__name__)

#: What the output holds: ``auto`` (probabilities, or logits turned into probabilities), or one of them for sure.
Output = Literal["auto", "probabilities", "logits", "labels"]

_OUTPUTS = ("auto", "probabilities", "logits", "labels")
_MAX_EXCERPT = 200
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110 token)
_NAMES_HINT = "for a scikit-learn model on MLServer any input name works, and 'predict_proba' gives probabilities"


# -- arguments -------------------------------------------------------------------------------------------------------
def _check_url(url: str) -> str:
    """``url`` without a trailing slash, or InvalidParameterError; a URL with credentials is never repeated."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidParameterError("The model URL is malformed.") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidParameterError(
            "The model URL contains a user name or password.",
            remedy="Remove them from the URL and send credentials as a header, e.g. headers={'Authorization': ...}.",
            cli_remedy="Remove them from the URL and send credentials with --header 'Authorization: ...'.",
        )
    if parts.scheme not in ("http", "https"):
        raise InvalidParameterError(f"The model URL must start with http:// or https://, got {url!r}.")
    try:
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise InvalidParameterError(f"The model URL {url!r} has a malformed port.") from None
    if not parts.hostname:
        raise InvalidParameterError(f"The model URL {url!r} names no host.")
    if parts.query or parts.fragment:
        raise InvalidParameterError(
            f"The model URL {url!r} has a query or fragment.",
            remedy="Give the server's base URL, e.g. http://host:8080.",
        )
    return url.rstrip("/")


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers as a dict, or InvalidParameterError naming the header (never its value)."""
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise InvalidParameterError(f"{name!r} is not a valid HTTP header name.")
        if not isinstance(value, str) or any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise InvalidParameterError(
                f"The value of header {name!r} is not a string or holds control characters (value not shown)."
            )
        checked[name] = value
    return checked


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the wire --------------------------------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text[:_MAX_EXCERPT] + ("..." if len(text) > _MAX_EXCERPT else "")


def _detail(response: httpx.Response) -> str:
    """The server's own explanation of an error answer, on one line: its ``error`` field, or a traceback's last line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "detail"):
            if isinstance(body.get(key), str) and body[key].strip():
                return _one_line(body[key])
    lines = [line for line in response.text.splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        return _one_line(lines[-1])  # a server that answers with its traceback: the exception is the last line
    return _one_line(response.text) or "(empty answer)"


class _Endpoint:
    """One model on one server: the HTTP client, and protocol errors turned into clear RemoteModelErrors."""

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        model_version: str | None,
        headers: dict[str, str],
        timeout: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.url = url
        self.model_name = model_name
        self.model_path = f"/v2/models/{quote(model_name, safe='')}" + (
            f"/versions/{quote(model_version, safe='')}" if model_version else ""
        )
        self.header_names = tuple(headers)
        self._client = httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport)

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response to one request; unreachable servers, timeouts and refused credentials raise."""
        where = f"{method} {self.url}{path}"
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RemoteModelError(
                f"{where} timed out after {self._client.timeout.read} s.",
                remedy="Check that the server is up and not overloaded, or allow more time (timeout=).",
                cli_remedy="Check that the server is up and not overloaded.",
            ) from exc
        except httpx.HTTPError as exc:
            raise RemoteModelError(
                f"Cannot reach the model server: {where} failed: {type(exc).__name__}: {exc}",
                remedy="Check the URL and port, that the server is running, and that this machine can reach it.",
            ) from exc
        if response.status_code in (401, 403):
            refused = "unauthorised" if response.status_code == 401 else "forbidden"
            if self.header_names:
                sent = ", ".join(self.header_names)
                remedy = f"The header(s) sent ({sent}) were not accepted: check the token, its expiry and its scope."
                cli_remedy = remedy
            else:
                remedy = "The server wants credentials: send them as a header, e.g. headers={'Authorization': ...}."
                cli_remedy = "The server wants credentials: send them with --header 'Authorization: Bearer TOKEN'."
            raise RemoteModelError(
                f"The model server refused the request as {refused}: {where} answered {response.status_code}.",
                remedy=remedy,
                cli_remedy=cli_remedy,
            )
        return response

    def body(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object of a status 200 answer; any other answer raises."""
        where = f"{response.request.method} {response.request.url}"
        if response.status_code != 200:
            raise RemoteModelError(f"{where} answered {response.status_code}: {_detail(response)}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RemoteModelError(f"{where} did not answer a JSON object: {_one_line(response.text)}")
        return body

    def metadata(self) -> dict[str, Any]:
        """The model's metadata; an unknown model raises."""
        response = self.send("GET", self.model_path)
        if response.status_code == 404:
            raise RemoteModelError(
                f"The server at {self.url} has no model {self.model_name!r} "
                f"(GET {self.model_path} answered 404: {_detail(response)}).",
                remedy="Check the model name (and version) against the server's model repository.",
            )
        return self.body(response)

    def post_infer(self, x: FloatArray, input_name: str, output_name: str) -> httpx.Response:
        """Send the batch ``x`` as input ``input_name``, requesting the output ``output_name`` by name."""
        payload = {
            "id": uuid.uuid4().hex,
            "inputs": [
                {"name": input_name, "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
            ],
            "outputs": [{"name": output_name}],
        }
        return self.send("POST", f"{self.model_path}/infer", json=payload)

    def output(self, response: httpx.Response, output_name: str) -> dict[str, Any]:
        """The output tensor ``output_name`` of an inference answer."""
        outputs = self.body(response).get("outputs")
        if not isinstance(outputs, list):
            raise RemoteModelError("The inference response has no outputs list.")
        out = next((o for o in outputs if isinstance(o, dict) and o.get("name") == output_name), None)
        if out is None:
            raise RemoteModelError(f"The inference response has no output {output_name!r}.")
        return out

    def close(self) -> None:
        self._client.close()


# -- reading outputs -------------------------------------------------------------------------------------------------
def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _holds_labels(out: Mapping[str, Any], n: int) -> bool:
    """True when the output tensor is ``n`` labels: shape ``(n,)`` or ``(n, 1)``, integers or strings."""
    data = out.get("data")
    if out.get("shape") not in ([n], [n, 1]) or not isinstance(data, list) or len(data) != n:
        return False
    return all(isinstance(v, str) or (_is_number(v) and float(v).is_integer()) for v in data)


def _read_labels(out: Mapping[str, Any], n: int, n_classes: int, classes: tuple[str, ...] | None) -> IntArray:
    """Class indices from a label output: integers are indices, strings are looked up in ``classes``."""
    name = out.get("name")
    if not _holds_labels(out, n):
        raise RemoteModelError(
            f"Output {name!r} has shape {out.get('shape')} or values that are not {n} labels.",
            remedy="Check that the output named holds labels, or request an output of class scores.",
        )
    index = {label: i for i, label in enumerate(classes or ())}
    labels = []
    for v in out["data"]:
        if isinstance(v, str):
            if v not in index:
                known = f"the classes {list(classes)}" if classes else "no class names (classes= was not given)"
                raise RemoteModelError(
                    f"Output {name!r} holds the label {_one_line(v)!r}, and there are {known}.",
                    remedy="Pass the model's class labels in class-index order (classes=).",
                    cli_remedy="Give the model's class labels in class-index order (--classes).",
                )
            labels.append(index[v])
        elif 0 <= v < n_classes:
            labels.append(int(v))
        else:
            raise RemoteModelError(
                f"Output {name!r} holds the label {v}, outside the {n_classes} classes 0..{n_classes - 1}.",
                remedy="Check that the model and the data have the same classes.",
            )
    return np.asarray(labels, dtype=np.int64)


def _labels_not_scores(name: object) -> RemoteModelError:
    return RemoteModelError(
        f"Output {name!r} holds labels, not class scores.",
        remedy="Request the output with class probabilities (output_name='predict_proba' on MLServer), or use the "
        "labels with output='labels'.",
        cli_remedy="Name the output with class probabilities (--output-name predict_proba on MLServer).",
    )


def _read_scores(out: Mapping[str, Any], n: int, n_classes: int) -> NDArray[np.float64]:
    """The ``(n, n_classes)`` scores of an output, checked: shape, length, finite numbers."""
    name = out.get("name")
    if _holds_labels(out, n):
        raise _labels_not_scores(name)
    expected = [n, n_classes]
    if out.get("shape") != expected:
        raise RemoteModelError(f"Output {name!r} has shape {out.get('shape')}; expected {expected}.")
    data = out.get("data")
    if not isinstance(data, list) or len(data) != n * n_classes:
        raise RemoteModelError(f"Output {name!r} does not hold {n * n_classes} numbers.")
    if not all(_is_number(v) for v in data):
        raise RemoteModelError(f"Output {name!r} holds values that are not finite numbers.")
    return np.asarray(data, dtype=np.float64).reshape(n, n_classes)


# -- metadata --------------------------------------------------------------------------------------------------------
def _declared(meta: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    specs = meta.get(f"{kind}s")
    return (
        [s for s in specs if isinstance(s, dict) and isinstance(s.get("name"), str)] if isinstance(specs, list) else []
    )


def _pick_name(meta: Mapping[str, Any], kind: str, given: str | None, model: str) -> str | None:
    """The name to use for the model's input or output: ``given`` if the metadata allows it, else the only one
    declared; None when the metadata declares none and none is given."""
    specs = _declared(meta, kind)
    names = [s["name"] for s in specs]
    if given is not None:
        if names and given not in names:
            raise RemoteModelError(
                f"Model {model!r} has no {kind} {given!r}; its metadata declares {', '.join(map(repr, names))}.",
                remedy=f"Pass {kind}_name= with one of the declared names.",
                cli_remedy=f"Pass --{kind}-name with one of the declared names.",
            )
        return given
    if len(names) > 1:
        raise RemoteModelError(
            f"Model {model!r} declares {len(names)} {kind}s ({', '.join(map(repr, names))}); say which to use.",
            remedy=f"Pass {kind}_name=.",
            cli_remedy=f"Pass --{kind}-name.",
        )
    return names[0] if names else None


def _names(meta: Mapping[str, Any], input_name: str | None, output_name: str | None, model: str) -> tuple[str, str]:
    """The input and output names, from the arguments or the metadata; one error when some are missing."""
    picked_in = _pick_name(meta, "input", input_name, model)
    picked_out = _pick_name(meta, "output", output_name, model)
    if picked_in is None or picked_out is None:
        missing = [kind for kind, name in (("input", picked_in), ("output", picked_out)) if name is None]
        raise RemoteModelError(
            f"Model {model!r} declares no {' or '.join(missing)} names in its metadata, so they must be given.",
            remedy=f"Pass {' and '.join(f'{k}_name=' for k in missing)} ({_NAMES_HINT}).",
            cli_remedy=f"Pass {' and '.join(f'--{k}-name' for k in missing)} ({_NAMES_HINT}).",
        )
    return picked_in, picked_out


def _declared_dims(meta: Mapping[str, Any], kind: str, name: str) -> tuple[int, ...] | None:
    """The declared shape of one tensor without its batch dimension, or None when not declared (or not fixed)."""
    spec = next((s for s in _declared(meta, kind) if s["name"] == name), None)
    shape = spec.get("shape") if spec is not None else None
    if not isinstance(shape, list) or len(shape) < 2:
        return None
    dims = shape[1:]  # the first dimension is the batch
    return tuple(dims) if all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims) else None


# -- the classifier --------------------------------------------------------------------------------------------------
class RemoteClassifier(Classifier):
    """A classifier behind an Open Inference Protocol v2 REST endpoint.

    Names and shapes that are not given are read from the model's metadata (``GET /v2/models/{name}``). With
    ``output="labels"`` the endpoint answers labels and the classifier is label-only; ``n_classes`` (or
    ``classes``) is then needed. :func:`connect` probes the endpoint first and chooses ``output`` for you.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        model_version: str | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        input_shape: tuple[int, ...] | None = None,
        n_classes: int | None = None,
        output: Output = "auto",
        classes: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        batch_size: int = 256,
        clip_values: Bounds | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if output not in _OUTPUTS:
            raise InvalidParameterError(f"output must be one of {', '.join(_OUTPUTS)}, not {output!r}.")
        self.url = _check_url(url)
        self.model_name = model_name
        self.output = output
        self.classes = tuple(str(c) for c in classes) if classes is not None else None
        if n_classes is None and self.classes is not None:
            n_classes = len(self.classes)
        sent = _check_headers(headers)
        parts = urlsplit(self.url)
        if sent and parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            log.warning("Sending header(s) %s in clear text (plain HTTP) to %s.", ", ".join(sent), parts.hostname)
        self._endpoint = _Endpoint(
            self.url, model_name, model_version=model_version, headers=sent, timeout=timeout, transport=transport
        )
        try:
            if input_name is None or output_name is None or input_shape is None or n_classes is None:
                meta = self._endpoint.metadata()
                input_name, output_name = _names(meta, input_name, output_name, model_name)
                if input_shape is None:
                    input_shape = _declared_dims(meta, "input", input_name)
                    if input_shape is None:
                        raise RemoteModelError(
                            f"The metadata of model {model_name!r} gives no fixed shape for input {input_name!r}.",
                            remedy="Pass input_shape=.",
                        )
                if n_classes is None:
                    dims = _declared_dims(meta, "output", output_name)
                    if output == "labels" or dims is None or len(dims) != 1 or dims[0] < 2:
                        raise RemoteModelError(
                            f"The metadata of model {model_name!r} does not give the number of classes of output "
                            f"{output_name!r} (its shape: {dims}).",
                            remedy="Pass n_classes= (or classes=).",
                        )
                    n_classes = dims[0]
        except BaseException:
            self._endpoint.close()
            raise
        self.input_name = str(input_name)
        self.output_name = str(output_name)
        super().__init__(n_classes=n_classes, input_shape=input_shape, clip_values=clip_values, batch_size=batch_size)

    @property
    def label_only(self) -> bool:
        """True when the endpoint answers labels (``output="labels"``); :meth:`predict_proba` gives one-hot rows."""
        return self.output == "labels"

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        out = self._endpoint.output(self._endpoint.post_infer(x, self.input_name, self.output_name), self.output_name)
        if self.label_only:
            labels = _read_labels(out, len(x), self.n_classes, self.classes)
            return np.eye(self.n_classes, dtype=np.float32)[labels]
        scores = _read_scores(out, len(x), self.n_classes)
        is_proba = bool(np.all(scores >= -1e-6) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4))
        if self.output == "logits" or (self.output == "auto" and not is_proba):
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        return scores.astype(np.float32)

    # -- lifetime ------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._endpoint.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"RemoteClassifier(url={self.url!r}, model_name={self.model_name!r}, n_classes={self.n_classes}, "
            f"output={self.output!r})"
        )


# -- connecting ------------------------------------------------------------------------------------------------------
def connect(
    url: str,
    model_name: str,
    *,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
    probe: ArrayLike | None = None,
    classes: Sequence[str] | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
    output: Output = "auto",
    headers: Mapping[str, str] | None = None,
    model_version: str | None = None,
    timeout: float = 30.0,
    batch_size: int = 256,
    clip_values: Bounds | None = None,
    transport: httpx.BaseTransport | None = None,
) -> RemoteClassifier:
    """A :class:`RemoteClassifier` for a served model, after checking that it answers as the data needs.

    Before any work: the URL is checked (http or https, no credentials in it), then the server's readiness, the
    model's metadata (names and shapes it declares must agree with the arguments) and one probe inference
    on ``probe`` (rows of the data; default: one row of zeros inside ``clip_values``). The probe's answer
    settles what the output holds: class scores (one per class: ``n_classes`` must match) or labels (the
    classifier is then label-only). ``input_shape`` and ``n_classes`` come from the data; when not given they
    are read from the metadata and the probe. Each failure raises one
    :class:`~modelshield.errors.RemoteModelError` (or :class:`~modelshield.errors.InvalidParameterError` for
    the arguments) whose message is one line.
    """
    if output not in _OUTPUTS:
        raise InvalidParameterError(f"output must be one of {', '.join(_OUTPUTS)}, not {output!r}.")
    base = _check_url(url)
    endpoint = _Endpoint(
        base, model_name, model_version=model_version, headers=_check_headers(headers), timeout=timeout,
        transport=transport,
    )  # fmt: skip
    try:
        ready = endpoint.send("GET", "/v2/health/ready")
        if ready.status_code == 404:
            raise RemoteModelError(
                f"{base} does not answer as an Open Inference Protocol v2 server (GET /v2/health/ready answered 404).",
                remedy="Give the server's base URL (e.g. http://host:8080), without /v2/models/... .",
            )
        if ready.status_code != 200:
            raise RemoteModelError(
                f"The server at {base} is not ready (GET /v2/health/ready answered {ready.status_code}: "
                f"{_detail(ready)}).",
                remedy="Wait until it has loaded its models, or read its logs.",
            )
        meta = endpoint.metadata()
        input_name, output_name = _names(meta, input_name, output_name, model_name)
        declared = _declared_dims(meta, "input", input_name)
        if input_shape is None:
            input_shape = declared
            if input_shape is None:
                raise RemoteModelError(
                    f"The metadata of model {model_name!r} gives no fixed shape for input {input_name!r}.",
                    remedy="Pass input_shape= (the shape of one row of the data).",
                )
        input_shape = tuple(int(d) for d in input_shape)
        if declared is not None and declared != input_shape:
            raise InvalidInputError(
                f"Model {model_name!r} declares inputs of shape {declared}; the data has rows of shape {input_shape}.",
                remedy="Pass the data the model was built for (same features, same order).",
            )
        x = _probe_rows(probe, input_shape, clip_values)
        response = endpoint.post_infer(x, input_name, output_name)
        if response.status_code != 200:
            raise RemoteModelError(
                f"Model {model_name!r} failed on a probe input of shape {x.shape} (input {input_name!r}, output "
                f"{output_name!r}) with HTTP {response.status_code}: {_detail(response)}",
                remedy="Check that the data has the model's features in its order, and the input and output names.",
            )
        out = endpoint.output(response, output_name)
        names = tuple(str(c) for c in classes) if classes is not None else None
        found, n_classes = _probe_kind(out, len(x), n_classes, names, output, model_name)
    finally:
        endpoint.close()
    clf = RemoteClassifier(
        base, model_name, model_version=model_version, input_name=input_name, output_name=output_name,
        input_shape=input_shape, n_classes=n_classes, output=found, classes=classes, headers=headers,
        timeout=timeout, batch_size=batch_size, clip_values=clip_values, transport=transport,
    )  # fmt: skip
    log.info("Connected to model %r at %s: output %r holds %s.", model_name, base, output_name,
             "labels only" if clf.label_only else "class scores")  # fmt: skip
    return clf


def _probe_rows(probe: ArrayLike | None, input_shape: tuple[int, ...], clip_values: Bounds | None) -> FloatArray:
    if probe is None:
        zeros = np.zeros((1, *input_shape), dtype=np.float32)
        return clip_values.clip(zeros) if clip_values is not None else zeros
    x = np.asarray(probe, dtype=np.float32)
    if x.shape == input_shape:
        x = x[np.newaxis]
    if x.shape[1:] != input_shape or len(x) == 0 or not np.all(np.isfinite(x)):
        raise InvalidInputError(
            f"The probe has shape {x.shape}; expected finite rows of shape (n, {', '.join(map(str, input_shape))})."
        )
    return x


def _probe_kind(
    out: Mapping[str, Any], n: int, n_classes: int | None, classes: tuple[str, ...] | None, output: Output, model: str
) -> tuple[Output, int]:
    """What the probe's output holds (``output`` settled: ``"labels"``, or a kind of scores) and the class count."""
    name, shape = out.get("name"), out.get("shape")
    if n_classes is None and classes is not None:
        n_classes = len(classes)
    if _holds_labels(out, n):
        if output in ("probabilities", "logits"):
            raise _labels_not_scores(name)
        if n_classes is None:
            raise RemoteModelError(
                f"Output {name!r} of model {model!r} holds labels, and the number of classes is not known.",
                remedy="Pass n_classes= or classes=.",
            )
        _read_labels(out, n, n_classes, classes)
        return "labels", n_classes
    width = shape[1] if isinstance(shape, list) and len(shape) == 2 and shape[0] == n else None
    if output == "labels" or not isinstance(width, int) or width < 2:
        data = out.get("data")
        sample = _one_line(repr(data[:3] if isinstance(data, list) else data))
        expected = "labels" if output == "labels" else "class scores or labels"
        raise RemoteModelError(
            f"Output {name!r} of model {model!r} does not hold {expected}: shape {shape}, datatype "
            f"{out.get('datatype')}, values like {sample}.",
            remedy="Name the output with one score per class, or the predicted labels: output_name= "
            "('predict_proba' or 'predict' for a scikit-learn model on MLServer).",
            cli_remedy="Name the output with one score per class, or the predicted labels, with --output-name "
            "('predict_proba' or 'predict' for a scikit-learn model on MLServer).",
        )
    if n_classes is not None and width != n_classes:
        raise InvalidInputError(
            f"Output {name!r} of model {model!r} gives {width} class scores per input; the data has {n_classes} "
            "classes.",
            remedy="Pass the data the model was built for, with every class of the model.",
        )
    _read_scores(out, n, width)
    return output, width
