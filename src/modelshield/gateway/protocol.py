"""The Open Inference Protocol v2 (KServe, Triton, MLServer) as the gateway speaks it: request and response bodies.

A request names its tensors::

    {"id": "r1", "inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": [0.0, ...]}],
     "outputs": [{"name": "probabilities"}]}

:func:`decode_inputs` turns the one input tensor into a float batch ``(n, *input_shape)``, checking what the
protocol promises: the datatype is numeric, the data hold exactly ``prod(shape)`` numbers (flat or nested in row-major
order, as the protocol allows), and the shape's first axis is the batch. Every problem raises
:class:`ProtocolError` naming the field, which the app answers with 422. JSON parsing and field types are pydantic's
(its Rust JSON parser reads the body once); numbers go to numpy in one conversion.

Outputs: ``probabilities`` (FP32, ``(n, n_classes)``, what the client's output policy releases) or ``label``
(INT64, ``(n,)``) for clients whose policy is label-only.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat

from modelshield.errors import InvalidInputError

__all__ = [
    "InferenceRequest",
    "ProtocolError",
    "RequestInput",
    "RequestOutput",
    "decode_inputs",
    "encode_output",
]

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"
]
_Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-:/]+$")]
_MAX_DIMS = 8
# Numbers only, strictly (no numeric strings), flat as the protocol specifies or nested up to four levels in row-major
# order as Triton and MLServer also accept; booleans only as booleans.
_Data = (
    list[StrictFloat]
    | list[list[StrictFloat]]
    | list[list[list[StrictFloat]]]
    | list[list[list[list[StrictFloat]]]]
    | list[StrictBool]
)


class ProtocolError(InvalidInputError):
    """A request body that breaks the Open Inference Protocol; ``field`` names where (422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestInput(_Body):
    """One input tensor: its name, shape (batch first), datatype and data (flat or nested, row-major)."""

    name: _Name
    shape: Annotated[list[Annotated[int, Field(ge=0, le=1 << 31)]], Field(min_length=1, max_length=_MAX_DIMS)]
    datatype: Datatype
    data: _Data
    parameters: dict[str, str | int | float | bool] | None = None


class RequestOutput(_Body):
    """An output the client asks for, by name."""

    name: _Name
    parameters: dict[str, str | int | float | bool] | None = None


class InferenceRequest(_Body):
    """``POST /v2/models/{name}/infer``: one input tensor, the outputs wanted (all when left out)."""

    id: Annotated[str, Field(max_length=128)] | None = None
    parameters: dict[str, str | int | float | bool] | None = None
    inputs: Annotated[list[RequestInput], Field(min_length=1, max_length=1)]
    outputs: Annotated[list[RequestOutput], Field(max_length=2)] | None = None


def decode_inputs(request: InferenceRequest, input_shape: tuple[int, ...], *, max_rows: int) -> NDArray[np.float64]:
    """The request's input tensor as a float64 batch ``(n, *input_shape)``; :class:`ProtocolError` otherwise.

    The batch may be larger than ``max_rows`` (the caller refuses it with 413); nothing is converted then.
    """
    tensor = request.inputs[0]
    field = "inputs[0]"
    shape = tuple(tensor.shape)
    if len(shape) < 1 or shape[0] < 1:
        raise ProtocolError(f"{field}.shape", f"{list(shape)} has no rows; the first axis is the batch")
    n = shape[0]
    expected = math.prod(input_shape)
    if shape[1:] != input_shape and not (len(shape) == 2 and shape[1] == expected):
        raise ProtocolError(
            f"{field}.shape",
            f"{list(shape)} does not fit the model, which takes [n, {', '.join(map(str, input_shape))}]",
        )
    if n > max_rows:
        return np.empty((n, 0))  # sized only; the caller refuses the batch before anything is converted
    try:
        array: NDArray[Any] = np.asarray(tensor.data, dtype=np.float64 if tensor.datatype != "BOOL" else np.bool_)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(
            f"{field}.data", f"must hold only numbers of datatype {tensor.datatype}, in a flat or regularly nested list"
        ) from None
    if array.size != n * expected:
        raise ProtocolError(f"{field}.data", f"holds {array.size} values; shape {list(shape)} needs {n * expected}")
    if array.dtype == np.bool_:
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ProtocolError(f"{field}.data", "holds NaN or infinite values")
    if tensor.datatype not in ("FP16", "FP32", "FP64") and np.any(array != np.round(array)):
        raise ProtocolError(f"{field}.data", f"holds fractions, but the datatype {tensor.datatype} is an integer type")
    return array.reshape((n, *input_shape))


def encode_output(name: str, values: NDArray[Any]) -> dict[str, Any]:
    """One response tensor: ``probabilities`` as FP32 ``(n, k)`` or ``label`` as INT64 ``(n,)``."""
    if name == "label":
        return {"name": name, "shape": [len(values)], "datatype": "INT64", "data": values.astype(np.int64).tolist()}
    return {
        "name": name,
        "shape": list(values.shape),
        "datatype": "FP32",
        "data": values.astype(np.float32).ravel().tolist(),
    }
