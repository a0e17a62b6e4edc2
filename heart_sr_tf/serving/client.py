"""A TensorFlow Serving REST client for the exported generator (standard library only).

Request: ``POST {server}:predict`` with
``{"signature_name": "serving_default", "inputs": {"lr_image": [[[[v], ...], ...], ...]}}``;
response: ``{"outputs": [...]}`` (TF Serving drops the key of a single named output) or
``{"outputs": {"sr_image": [...]}}``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.serving.predictor import Predictor


def predict_request(lr: np.ndarray) -> bytes:
    return json.dumps({"signature_name": "serving_default", "inputs": {"lr_image": lr.tolist()}}).encode()


def rest_predictor(server: str, scale: int = 3, timeout: float = 120.0) -> Predictor:
    """``server`` is the model URL, e.g. ``http://localhost:8501/v1/models/rrdb``."""
    url = server.rstrip("/") + ":predict"

    def fn(lr: np.ndarray) -> np.ndarray:
        request = urllib.request.Request(
            url, data=predict_request(lr), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise HeartSRError(f"{url}: server answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            raise HeartSRError(f"{url}: no usable answer ({exc})") from None
        outputs = body.get("outputs")
        if isinstance(outputs, dict):
            outputs = outputs.get("sr_image")
        if outputs is None:
            raise HeartSRError(f"{url}: response has no outputs: {str(body)[:200]}")
        return np.asarray(outputs, dtype=np.float32)

    return Predictor(fn, scale, url)
