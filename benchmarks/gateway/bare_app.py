"""The baseline: the Open Inference Protocol v2 infer route in plain FastAPI, with no security at all.

    BENCH_MODEL=model.joblib BENCH_MODEL_NAME=phishing-lr .venv/bin/python -m uvicorn bare_app:app --workers 1

It parses the same JSON body as the gateway (a pydantic model of the request), calls the scikit-learn model's
``predict_proba`` inline on the event loop (about 50 µs here, too short to be worth a thread) and answers the
probabilities as one FP32 output tensor. No authentication, limits, validation, guards, output policy or log: the
difference between this server and the gateway, same stack (uvicorn, one worker, same interpreter) and same model,
is what the gateway adds.
"""

from __future__ import annotations

import json
import os
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError


class _Input(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class _Request(BaseModel):
    id: str | None = None
    inputs: list[_Input]


MODEL = joblib.load(os.environ["BENCH_MODEL"])
NAME = os.environ.get("BENCH_MODEL_NAME", "model")

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> Response:
    if name != NAME:
        return JSONResponse({"error": "unknown model"}, status_code=404)
    try:
        req = _Request.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    tensor = req.inputs[0]
    x = np.asarray(tensor.data, dtype=np.float64).reshape(tensor.shape[0], -1)
    p = MODEL.predict_proba(x)
    body: dict[str, Any] = {
        "model_name": NAME,
        "id": req.id,
        "outputs": [
            {
                "name": "probabilities",
                "shape": list(p.shape),
                "datatype": "FP32",
                "data": p.astype(np.float32).ravel().tolist(),
            }
        ],
    }
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")
