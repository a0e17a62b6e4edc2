"""A TensorFlow Serving REST client for the exported generator (standard library only).

Request: ``POST {server}:predict`` with
``{"signature_name": "serving_default", "inputs": {"lr_image": [[[[v], ...], ...], ...]}}``;
response: ``{"outputs": [...]}`` (TF Serving drops the key of a single named output) or
``{"outputs": {"sr_image": [...]}}``.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.inference.predictor import Predictor

PROBE = 4  # side of the LR grid sent to learn a served model's factors


def predict_request(lr: np.ndarray) -> bytes:
    return json.dumps({"signature_name": "serving_default", "inputs": {"lr_image": lr.tolist()}}).encode()


def _model_url(server: str) -> bool:
    """``server`` is an http(s) URL with a host, a numeric port if any, and a path (``/v1/models/NAME``)."""
    try:
        parts = urllib.parse.urlsplit(server)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # (a port that is no number; a bracket left open, "http://[::1")
        return False
    return port_ok and parts.scheme in ("http", "https") and bool(parts.hostname) and bool(parts.path.strip("/"))


def rest_predictor(
    server: str, scale: int | None = None, timeout: float = 120.0, through_plane: bool = False
) -> Predictor:
    """``server`` is the model URL, e.g. ``http://localhost:8501/v1/models/rrdb``.

    TF Serving does not report a model's degradation, so its factors are learnt from one small request before
    any long work: ``[1, 4, 4, 1]`` must come back as ``[1, 4s, 4s, 1]`` in-plane (and ``s`` equal ``scale``
    when one is given), or as ``[1, 4g, 4, 1]`` for a ``through_plane`` model (its slice profile is taken to
    be the default, t = g). Every answer is checked for its shape and for finite values.
    """
    if not _model_url(server):
        raise HeartSRError(f"{server}: not a served model's URL (e.g. http://localhost:8501/v1/models/rrdb_kspace)")
    url = server.rstrip("/") + ":predict"

    def fn(lr: np.ndarray) -> np.ndarray:
        request = urllib.request.Request(
            url, data=predict_request(lr), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise HeartSRError(f"{url}: server answered {exc.code}: {_error_text(exc.read())}") from None
        except (OSError, json.JSONDecodeError, http.client.HTTPException) as exc:  # (URLError, timeouts: OSErrors)
            raise HeartSRError(f"{url}: no usable answer ({exc})") from None
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if isinstance(outputs, dict):
            outputs = outputs.get("sr_image")
        if outputs is None:
            raise HeartSRError(f"{url}: response has no outputs: {str(body)[:200]}")
        try:
            out = np.asarray(outputs, dtype=np.float32)
        except (ValueError, TypeError):
            raise HeartSRError(
                f"{url}: the outputs are not a numeric array of one shape (ragged or not numbers)"
            ) from None
        if out.ndim != 4 or out.shape[0] != len(lr) or out.shape[-1] != 1:
            raise HeartSRError(f"{url}: {list(lr.shape)} came back as {list(out.shape)}, not [{len(lr)}, h, w, 1]")
        if not np.all(np.isfinite(out)):
            raise HeartSRError(f"{url}: the server returned {int(np.sum(~np.isfinite(out)))} NaN or infinite values")
        return out

    shape = tuple(fn(np.zeros((1, PROBE, PROBE, 1), np.float32)).shape)
    if not through_plane:
        s = shape[1] // PROBE
        if s < 2 or shape != (1, s * PROBE, s * PROBE, 1):
            raise HeartSRError(f"{url}: not an in-plane model: [1, {PROBE}, {PROBE}, 1] came back as {list(shape)}")
        if scale is not None and s != scale:
            raise HeartSRError(f"{url}: the served model upscales x{s}, not x{scale} as --scale says")
        return Predictor(fn, s, url, backend="TF Serving", precision="as served")
    g = shape[1] // PROBE if len(shape) == 4 else 0
    if g < 2 or shape != (1, g * PROBE, PROBE, 1):
        raise HeartSRError(f"{url}: not a through-plane model: [1, {PROBE}, {PROBE}, 1] came back as {list(shape)}")
    served = Degradation("through_plane", g)
    return Predictor(fn, g, url, degradation=served, backend="TF Serving", precision="as served")


def _error_text(body: bytes, most: int = 300) -> str:
    """A server's error answer as one line: TF Serving's ``error`` field, or the words of an error page (a proxy's
    or web server's HTML), whitespace collapsed, at most ``most`` characters."""
    text = body.decode(errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        text = payload["error"]
    else:
        text = re.sub(r"<[^>]*>", " ", text)  # (a page's markup, not its words)
    return " ".join(text.split())[:most]
