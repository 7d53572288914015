"""The HTTP service: a FastAPI app around one task adapter, with dynamic batching, limits and Prometheus metrics.

Every answer is JSON; every refusal is `{"error": {"status", "code", "message"}}` with a 4xx status (5xx only for
a fault of the server itself, which keeps serving). Request bodies are capped while they stream in, images are
checked against the pixel limit from their header before decoding, and each request has a deadline covering
decoding, queueing and inference. The adapter does the task's work with the same preprocessing code as training
and `cnnlab predict`; nothing here imports training code.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cnnlab.errors import CnnlabError, DataError
from cnnlab.serve.batching import DynamicBatcher, Overloaded, RequestTimeout
from cnnlab.serve.forms import FormError, TooManyParts, parse_multipart, parse_urlencoded
from cnnlab.serve.metrics import ServeMetrics
from cnnlab.serve.settings import ServeSettings

MAX_TOP_K = 1000
DETECTION_OPTIONS = ("conf", "iou")
INLINE_BYTES = 64 * 1024  # inputs up to this decode on the event loop: faster than a hop to a worker thread
INLINE_TASKS = ("classification", "text")  # not faces (a face detector runs in prepare) nor detection (big images)
ROUTES = ("/", "/health", "/metadata", "/metrics", "/predict", "/predict/batch")
IMAGE_FIELDS = ("file", "image")
BATCH_IMAGE_FIELDS = ("files", "file", "images")
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 422: "invalid_parameter"}


class ApiError(Exception):
    """A refusal with its HTTP status, a stable machine-readable code and a one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, "too_large", f"{what} is over the server's limit of {limit:,} bytes")


def input_error(error: DataError, kind: str = "image") -> ApiError:
    """A DataError from the adapter: over the pixel (or character) limit is 413, anything else about the input 400."""
    from cnnlab.serve.adapters import InputTooLarge

    if isinstance(error, InputTooLarge):
        return ApiError(413, "too_many_pixels" if kind == "image" else "too_large", str(error))
    return ApiError(400, "bad_input", str(error))


# -- ASGI middleware: the body limit and the request metrics -------------------------------------------------------


class BodyLimit:
    """Refuse bodies over `max_bytes`: at once from Content-Length, else as soon as the streamed bytes pass it, so a
    huge upload is never held in memory."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = _error_response(_too_large(f"the request body ({int(declared):,} bytes)", self.max_bytes))
            return await response(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large("the request body", self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


class RequestMetrics:
    """Count every answer by route template and status, and time it."""

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def recording_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.observe(route, status[0], time.perf_counter() - start)


# -- reading a request's items -------------------------------------------------------------------------------------


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _decode_base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, "wrong_field", f"{where} must be a base64 string, got {type(value).__name__}")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", f"{where} is not valid base64") from None


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "empty", "the request body is empty; send a JSON object")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, "bad_json", f"the request body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", f"the JSON body must be an object, got {type(body).__name__}")
    return body


def _expected(kind: str, batch: bool) -> str:
    if kind == "text":
        return 'JSON {"texts": ["...", ...]}' if batch else 'JSON {"text": "..."}'
    if batch:
        return "multipart form files in field 'files', or JSON {\"images\": [base64, ...]}"
    return "a multipart form file in field 'file', or JSON {\"image\": base64}"


def _json_items(body: dict[str, Any], kind: str, batch: bool) -> list[tuple[bytes | str, str]]:
    key = ("texts" if batch else "text") if kind == "text" else ("images" if batch else "image")
    if key not in body:
        wrong = ", ".join(repr(k) for k in list(body)[:5]) or "none"
        raise ApiError(400, "wrong_field", f"expected field {key!r} ({_expected(kind, batch)}); got fields: {wrong}")
    values = body[key] if batch else [body[key]]
    if batch and not isinstance(values, list):
        raise ApiError(400, "wrong_field", f"field {key!r} must be a list, got {type(values).__name__}")
    if kind == "text":
        bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if bad is not None:
            where = f"{key}[{bad}]" if batch else key
            raise ApiError(400, "wrong_field", f"{where} must be a string, got {type(values[bad]).__name__}")
        return [(value, f"{key}[{i}]" if batch else key) for i, value in enumerate(values)]
    return [
        (_decode_base64(value, f"{key}[{i}]" if batch else key), f"{key}[{i}]" if batch else key)
        for i, value in enumerate(values)
    ]


async def _form_items(request: Request, kind: str, batch: bool, settings: ServeSettings):
    limit = settings.max_batch_items if batch else 1
    body, media = await request.body(), _media_type(request)
    try:
        if media == "multipart/form-data":
            parts = parse_multipart(body, request.headers["content-type"], limit + 16)
        else:
            parts = parse_urlencoded(body, limit + 16)
    except TooManyParts:
        raise ApiError(413, "too_many_items", f"over {limit} items; the server takes at most {limit}") from None
    except FormError as error:
        raise ApiError(400, "bad_form", f"the form cannot be read ({error})") from None
    if kind == "text":
        name = "texts" if batch else "text"
        texts = [part.data.decode("utf-8", errors="replace") for part in parts if part.name == name]
        if not texts:
            raise ApiError(400, "wrong_field", f"expected form field {name!r} with text")
        return [(text, name) for text in texts]
    fields = BATCH_IMAGE_FIELDS if batch else IMAGE_FIELDS
    uploads = [part for part in parts if part.name in fields]
    if not uploads:
        got = ", ".join(repr(part.name) for part in parts[:5]) or "none"
        raise ApiError(400, "wrong_field", f"expected {_expected(kind, batch)}; got form fields: {got}")
    if not batch and len(uploads) > 1:
        raise ApiError(400, "wrong_field", f"{len(uploads)} files in one /predict request; use /predict/batch")
    text_field = next((part for part in uploads if not part.is_file), None)
    if text_field is not None:
        raise ApiError(400, "wrong_field", f"form field {text_field.name!r} must be a file upload, not a text value")
    return [(part.data, part.filename or "upload") for part in uploads]


async def read_items(request: Request, kind: str, batch: bool, settings: ServeSettings):
    """(data, name) for each item of the request: image bytes or text, by the content type."""
    media = _media_type(request)
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        items = await _form_items(request, kind, batch, settings)
    elif media == "application/json" or media.endswith("+json"):
        items = _json_items(await _json_body(request), kind, batch)
    elif kind == "image" and not batch and (media.startswith("image/") or media == "application/octet-stream"):
        items = [(await request.body(), "upload")]
    elif kind == "text" and not batch and media == "text/plain":
        items = [((await request.body()).decode("utf-8", errors="replace"), "text")]
    else:
        shown = media or "none"
        raise ApiError(
            415, "unsupported_media_type", f"content type {shown!r} not accepted; send {_expected(kind, batch)}"
        )
    if batch and not items:
        raise ApiError(400, "empty", "the batch holds no items")
    if len(items) > settings.max_batch_items:
        raise ApiError(
            413, "too_many_items", f"{len(items)} items; the server takes at most {settings.max_batch_items}"
        )
    return items


# -- the app -------------------------------------------------------------------------------------------------------


def page_html() -> str:
    return resources.files("cnnlab.serve").joinpath("page.html").read_text(encoding="utf-8")


def create_app(adapter, settings: ServeSettings | None = None) -> FastAPI:
    """The service for one loaded adapter (`cnnlab.serve.adapters.load_adapter`)."""
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    batcher = DynamicBatcher(
        adapter.predict, settings.max_batch, settings.max_wait_ms, settings.max_queue, on_batch=_batch_observer(metrics)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        announce = os.environ.pop("CNNLAB_SERVE_ANNOUNCE", None)
        if announce:
            print(announce, flush=True)
        yield
        batcher.stop()

    # No /docs: Swagger UI loads its scripts from a CDN, and the service must need nothing from outside.
    app = FastAPI(title="cnnlab", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.adapter, app.state.settings, app.state.metrics, app.state.batcher = adapter, settings, metrics, batcher
    _add_error_handlers(app, metrics)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    kind = adapter.input_kind

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html())

    @app.get("/health")
    async def health() -> JSONResponse:
        meta = adapter.metadata()
        return JSONResponse(
            {
                "status": "ok",
                "task": meta.get("task"),
                "model": meta.get("model"),
                "backend": meta.get("backend"),
                "queued": batcher.depth,
            }
        )

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        return {**adapter.metadata(), "limits": settings.limits(), "batching": settings.batching()}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        metrics.queue_depth.set(batcher.depth)
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        deadline, options = time.perf_counter() + settings.timeout_s, _options(request, adapter.task)
        with batcher.arriving():
            ((data, name),) = await read_items(request, kind, False, settings)
            item = await _prepare(adapter, data, name)
        answer = await _answer(batcher, [item], options, deadline)
        metrics.items.inc()
        if isinstance(answer[0], BaseException):
            raise answer[0]
        return JSONResponse(answer[0])  # directly: no response model to validate the answer against

    @app.post("/predict/batch")
    async def predict_batch(request: Request) -> JSONResponse:
        deadline, options = time.perf_counter() + settings.timeout_s, _options(request, adapter.task)
        results: list[Any] = []
        good: list[tuple[int, Any]] = []
        with batcher.arriving():
            for index, (data, name) in enumerate(await read_items(request, kind, True, settings)):
                try:
                    good.append((index, await _prepare(adapter, data, name)))
                    results.append(None)
                except ApiError as error:
                    results.append(error.body())
                    metrics.error("/predict/batch", error.code)
        answers = await _answer(batcher, [item for _, item in good], options, deadline) if good else []
        for (index, _), answer in zip(good, answers):
            results[index] = _item_error(answer).body() if isinstance(answer, BaseException) else answer
        metrics.items.inc(len(good))
        return JSONResponse({"results": results})

    return app


def _options(request: Request, task: str) -> dict[str, Any]:
    """The answer options a request asks for in its query: `top_k`, and for detection runs `conf` and `iou` (the
    score threshold and the NMS overlap, in place of the run's own)."""
    options: dict[str, Any] = {"top_k": _top_k(request)}
    for name in DETECTION_OPTIONS:
        text = request.query_params.get(name)
        if text is None:
            continue
        if task != "detection":
            raise ApiError(422, "invalid_parameter", f"{name}: applies to detection runs; this is a {task} run")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 <= value <= 1:  # NaN fails too
            raise ApiError(422, "invalid_parameter", f"{name}: must be a number in [0, 1], got {text!r}")
        options[name] = value
    return options


def _top_k(request: Request) -> int | None:
    """The `top_k` query parameter (read by hand: FastAPI's parameter machinery costs more than the model for a
    small net)."""
    text = request.query_params.get("top_k")
    if text is None:
        return None
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_TOP_K:
        raise ApiError(422, "invalid_parameter", f"top_k: must be a whole number in [1, {MAX_TOP_K}], got {text!r}")
    return int(text)


def _batch_observer(metrics: ServeMetrics):
    return lambda size: metrics.batch_size.observe(size)


async def _prepare(adapter, data: bytes | str, name: str) -> Any:
    if isinstance(data, bytes) and not data:
        raise ApiError(400, "empty", f"{name}: the upload is empty; expected an image")
    try:
        if len(data) <= INLINE_BYTES and adapter.task in INLINE_TASKS:
            return adapter.prepare(data, name)
        return await anyio.to_thread.run_sync(adapter.prepare, data, name)
    except DataError as error:
        raise input_error(error, adapter.input_kind) from None


async def _answer(batcher: DynamicBatcher, items: list[Any], options: dict[str, Any], deadline: float) -> list[Any]:
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise ApiError(504, "timeout", "the request timed out while its input was read and decoded")
    try:
        return await batcher.submit_many(items, options, remaining)
    except Overloaded as error:
        raise ApiError(503, "overloaded", str(error)) from None
    except RequestTimeout as error:
        raise ApiError(504, "timeout", str(error)) from None


def _item_error(error: BaseException) -> ApiError:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, DataError):
        return input_error(error)
    if isinstance(error, CnnlabError):
        return ApiError(400, "bad_input", str(error))
    return ApiError(500, "internal", f"the model failed on this input ({type(error).__name__}: {error})"[:400])


def _add_error_handlers(app: FastAPI, metrics: ServeMetrics) -> None:
    def respond(request: Request, error: ApiError) -> JSONResponse:
        route = request.url.path if request.url.path in ROUTES else "other"
        metrics.error(route, error.code)
        return _error_response(error)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return respond(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(error.status_code, "http_error")
        message = str(error.detail) if error.detail else code
        if error.status_code == 404:
            message = f"no route {request.url.path}; see GET /metadata, POST /predict, POST /predict/batch"
        return respond(request, ApiError(error.status_code, code, message))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
        return respond(request, ApiError(422, "invalid_parameter", f"{where or 'request'}: {first.get('msg', error)}"))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        if isinstance(error, ApiError):  # raised inside middleware (the streamed body limit)
            return respond(request, error)
        return respond(request, _item_error(error))
