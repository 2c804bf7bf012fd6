"""Check the sandbox's JSON answers against Mattermost's official OpenAPI document.

Test tooling (needs ``pyyaml`` and ``jsonschema``, the ``test`` extra); tests/conftest.py
turns it on for this suite. The document is assembled from the official source fragments
exactly the way Mattermost's Makefile does (text concatenation, head first, definitions
last), ``$ref``s are resolved here, and OpenAPI 3.0's ``nullable`` is mapped to JSON
Schema.

Allowed differences are only those of the API notes' section 10 that concern
answers: ``hashtags`` instead of ``hashtag`` and ``detailed_error`` in error
bodies are extra keys (the schemas allow extra keys, nothing to relax); the 429
plain-text body is not JSON and is skipped; a created post's ``file_ids`` may be
``null`` (the real server answers so when none of the given files could be attached,
although the document says array). A status the operation does not
document is checked against ``AppError`` when it is an error (the server
answers every error with that body), and is a violation when it is a success.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mattermost_notify.sandbox import RequestRecord, add_response_observer

#: Order of the README: the Makefile's order restricted to the ten fragments.
FRAGMENT_ORDER = (
    "introduction",
    "users",
    "teams",
    "channels",
    "posts",
    "files",
    "system",
    "webhooks",
    "bots",
    "definitions",
)


def assemble(directory: str | Path) -> dict[str, Any]:
    """Parse the concatenated fragments as one OpenAPI document."""
    import yaml

    base = Path(directory)
    text = "".join((base / f"{name}.yaml").read_text(encoding="utf-8") for name in FRAGMENT_ORDER)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(text, Loader=loader)
    if not isinstance(document, dict) or "paths" not in document or "components" not in document:
        raise ValueError(f"{base}: not an assembled OpenAPI document")
    return document


def resolve(document: dict[str, Any], node: Any, _stack: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by its target, and ``nullable`` mapped."""
    if isinstance(node, list):
        return [resolve(document, item, _stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#/"):
            raise ValueError(f"non-local $ref {ref!r}")
        if ref in _stack:  # recursive schema: stop here, accept anything below
            return {}
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return resolve(document, target, (*_stack, ref))
    out = {key: resolve(document, value, _stack) for key, value in node.items()}
    if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@dataclass(frozen=True)
class Violation:
    method: str
    path: str
    status: int
    problem: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}: {self.problem}"


class OpenAPIChecker:
    """Validates answers (record + body) against the assembled document."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None
        self._operations: list[tuple[str, re.Pattern[str], int, dict[str, Any]]] = []
        self._validators: dict[int, Any] = {}
        self.checked = 0
        self.skipped = 0  # JSON answers of routes the document does not describe

    def _load(self) -> None:
        if self._document is not None:
            return
        document = assemble(self.directory)
        operations = []
        for template, item in document["paths"].items():
            regex = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$")
            literal = sum(1 for part in template.split("/") if part and "{" not in part)
            for method, operation in item.items():
                if isinstance(operation, dict) and "responses" in operation:
                    operations.append((method.upper(), regex, literal, operation))
        operations.sort(key=lambda op: -op[2])  # most literal segments first
        self._operations = operations
        self._app_error = resolve(document, {"$ref": "#/components/schemas/AppError"})
        self._document = document

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        self._load()
        for op_method, regex, _, operation in self._operations:
            if op_method == method and regex.match(path):
                return operation
        return None

    def response_schema(self, method: str, path: str, status: int) -> tuple[Any, str]:
        """(schema or None, why) for an answer; ``why`` is "" when a schema applies."""
        operation = self.operation(method, path)
        if operation is None:
            return None, "undocumented route"
        assert self._document is not None
        responses = operation["responses"]
        response = responses.get(str(status))
        if response is None:
            if status >= 400:
                return self._app_error, ""
            return None, f"status {status} not documented (has {sorted(responses)})"
        response = resolve(self._document, response)
        schema = ((response.get("content") or {}).get("application/json") or {}).get("schema")
        if schema is None:
            return {}, ""
        return schema, ""

    def check(self, record: RequestRecord, content_type: str, body: bytes) -> list[Violation]:
        """Violations of one answer (empty when it conforms or is not JSON)."""
        if not content_type.startswith("application/json") or record.status == 304:
            return []
        with self._lock:
            schema, why = self.response_schema(record.method, record.path, record.status)
            if why == "undocumented route":
                self.skipped += 1
                return []
            self.checked += 1
        violations = []
        if schema is None:
            return [Violation(record.method, record.path, record.status, why)]
        try:
            value = json.loads(body)
        except ValueError as err:
            return [Violation(record.method, record.path, record.status, f"invalid JSON: {err}")]
        if (
            record.method == "POST"
            and record.path == "/api/v4/posts"
            and isinstance(value, dict)
            and "file_ids" in value
            and value["file_ids"] is None
        ):
            value = {**value, "file_ids": []}  # the real server's null: see the docstring
        from jsonschema import Draft4Validator

        for error in Draft4Validator(schema).iter_errors(value):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            violations.append(
                Violation(record.method, record.path, record.status, f"{where}: {error.message}")
            )
        return violations


class ResponseCollector:
    """Collects answers from every sandbox of the process, checks them on demand."""

    def __init__(self, checker: OpenAPIChecker) -> None:
        self.checker = checker
        self._lock = threading.Lock()
        self._pending: list[tuple[RequestRecord, str, bytes]] = []
        self.remove = add_response_observer(self._observe)

    def _observe(self, record: RequestRecord, content_type: str, body: bytes) -> None:
        if content_type.startswith("application/json"):
            with self._lock:
                self._pending.append((record, content_type, body))

    def check_pending(self) -> list[Violation]:
        """Check everything collected since the last call."""
        with self._lock:
            pending, self._pending = self._pending, []
        violations: list[Violation] = []
        for record, content_type, body in pending:
            violations.extend(self.checker.check(record, content_type, body))
        return violations


#: where tests/conftest.py keeps the collector of this run
COLLECTOR_KEY = pytest.StashKey["ResponseCollector"]()
