"""A scripted stand-in for the kube-apiserver's list and watch endpoints (HTTP, loopback).

Each list call answers from `objects` (paged by `limit`); each watch call plays the next
scripted session: events streamed as JSON lines (bytes as they are: a broken stream) then
end of stream, or silence when the session ends with STALL; or an HTTP status.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Event = dict[str, Any]
STALL = "stall"
"""The last entry of a session: the stream stays open and silent."""


@dataclass
class Kind:
    objects: list[dict[str, Any]] = field(default_factory=list)
    resource_version: str = "100"
    sessions: list[list[Event | bytes | str] | int] = field(default_factory=list)
    list_status: list[int] = field(default_factory=list)  # statuses to answer before a 200
    # (objects, resourceVersion) the cluster holds after each completed full list, in order.
    later: list[tuple[list[dict[str, Any]], str]] = field(default_factory=list)
    list_calls: list[dict[str, str]] = field(default_factory=list)
    watch_calls: list[dict[str, str]] = field(default_factory=list)


class FakeApiServer:
    def __init__(self) -> None:
        self.kinds = {"nodes": Kind(), "pods": Kind()}
        self.app = web.Application()
        self.app.router.add_get("/api/v1/nodes", self._handle("nodes"))
        self.app.router.add_get("/api/v1/pods", self._handle("pods"))
        self.app.router.add_post("/api/v1/namespaces/{namespace}/pods/{name}/binding", self._bind)
        self.app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}", self._read_pod)
        events = "/apis/events.k8s.io/v1/namespaces/{namespace}/events"
        self.app.router.add_post(events, self._create_event)
        self.app.router.add_patch(events + "/{name}", self._patch_event)
        # (namespace, name) -> the events.k8s.io/v1 Event; and each PATCH's content type.
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.event_patches: list[tuple[str, dict[str, Any]]] = []
        # (namespace, name) -> node, for pods bound through the binding subresource.
        self.bound: dict[tuple[str, str], str] = {}
        self.bindings: list[dict[str, Any]] = []
        # (namespace, name) of every pod read (GET).
        self.pod_reads: list[tuple[str, str]] = []

    async def _bind(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bindings.append(body)
        key = (request.match_info["namespace"], request.match_info["name"])
        if key in self.bound:
            message = f"pod {key[1]} is already assigned to node {self.bound[key]!r}"
            status = {"kind": "Status", "code": 409, "reason": "Conflict", "message": message}
            return web.json_response(status, status=409)
        self.bound[key] = body["target"]["name"]
        return web.json_response({"kind": "Status", "status": "Success", "code": 201}, status=201)

    async def _create_event(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = (request.match_info["namespace"], body["metadata"]["name"])
        self.events[key] = body
        return web.json_response(body, status=201)

    async def _patch_event(self, request: web.Request) -> web.Response:
        key = (request.match_info["namespace"], request.match_info["name"])
        patch = await request.json()
        self.event_patches.append((request.content_type, patch))
        if key not in self.events:
            status = {"kind": "Status", "code": 404, "reason": "NotFound", "message": "gone"}
            return web.json_response(status, status=404)
        self.events[key] = {**self.events[key], **patch}
        return web.json_response(self.events[key])

    async def _read_pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        self.pod_reads.append((namespace, name))
        node = self.bound.get((namespace, name), "")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "x"}]},
        }
        return web.json_response(pod)

    def _handle(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            state = self.kinds[kind]
            query = dict(request.query)
            if query.get("watch") in ("true", "True", "1"):
                state.watch_calls.append(query)
                return await self._watch(request, state)
            state.list_calls.append(query)
            if state.list_status:
                return web.Response(status=state.list_status.pop(0), text="unavailable")
            response = self._list(state, query)
            if state.later and not response.headers.get("X-More"):
                state.objects, state.resource_version = state.later.pop(0)
            return response

        return handler

    def _list(self, state: Kind, query: dict[str, str]) -> web.Response:
        limit = int(query.get("limit", "0")) or len(state.objects) or 1
        start = int(query.get("continue", "0") or 0)
        page = state.objects[start : start + limit]
        more = start + limit < len(state.objects)
        body = {
            "kind": "List",
            "metadata": {
                "resourceVersion": state.resource_version,
                "continue": str(start + limit) if more else "",
            },
            "items": page,
        }
        headers = {"X-More": "1"} if more else {}
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    async def _watch(self, request: web.Request, state: Kind) -> web.StreamResponse:
        if not state.sessions:
            await asyncio.sleep(3600)  # an idle watch: nothing happens until cancelled
        session = state.sessions.pop(0)
        if isinstance(session, int):
            return web.Response(status=session, text="watch refused")
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        for event in session:
            if event == STALL:
                await asyncio.sleep(3600)
            elif isinstance(event, bytes):
                await response.write(event)
            else:
                await response.write(orjson.dumps(event) + b"\n")
        await response.write_eof()
        return response


def event(kind: str, obj: dict[str, Any], rv: str) -> Event:
    obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}
    return {"type": kind, "object": obj}


def bookmark(rv: str) -> Event:
    return {"type": "BOOKMARK", "object": {"kind": "Node", "metadata": {"resourceVersion": rv}}}


def gone() -> Event:
    return {
        "type": "ERROR",
        "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
    }
