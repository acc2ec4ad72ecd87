#!/usr/bin/env python3
"""A stand-in Kubernetes hub API for bench/quorum_failover.py (TRANSPORT=hub).

No real API server can run here, so this serves what gslb's hub transport and its
Clusternet discovery use, over real HTTP/1.1 on loopback: list and watch (`?watch=true`,
a chunked stream of `{"type", "object"}` lines, resumed from `resourceVersion`) of any
collection with namespaces and equality label selectors (ManagedClusters and
Descriptions are simply empty), server-side apply of a namespaced object (`PATCH`,
`application/apply-patch+yaml`, creating or replacing it whole), `DELETE` of one (a
`DELETED` event for the watches, as an instance that stops removes its view), and
`/version`. Like
tests/it/apiserver.rs, which the integration tests use; this one is in Python so that the
benchmark needs no Rust test harness.
"""

import asyncio
import json
import urllib.parse


class HubStandIn:
    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = None
        self.rv = 0
        self.objects = {}  # collection -> "ns/name" -> object
        self.history = []  # (rv, collection, event)
        self.changed = asyncio.Condition()
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self.serve, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self):
        if self.server:
            self.server.close()

    def kubeconfig(self, path):
        with open(path, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: hub
  cluster:
    server: http://{self.host}:{self.port}
contexts:
- name: hub
  context:
    cluster: hub
    user: bench
current-context: hub
users:
- name: bench
  user:
    token: bench-token
""")

    @staticmethod
    def parse(path):
        """(collection, namespace, name) of an API path; None when it is not one."""
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            prefix, rest = "/".join(parts[:2]), parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            prefix, rest = "/".join(parts[:3]), parts[3:]
        else:
            return None
        if len(rest) == 1:
            return f"{prefix}/{rest[0]}", None, None
        if len(rest) == 3 and rest[0] == "namespaces":
            return f"{prefix}/{rest[2]}", rest[1], None
        if len(rest) == 4 and rest[0] == "namespaces":
            return f"{prefix}/{rest[2]}", rest[1], rest[3]
        return None

    @staticmethod
    def matches(obj, ns, labels):
        meta = obj.get("metadata", {})
        if ns is not None and meta.get("namespace") != ns:
            return False
        for term in filter(None, labels.split(",")):
            k, _, v = term.partition("=")
            if meta.get("labels", {}).get(k) != v.lstrip("="):
                return False
        return True

    async def put(self, collection, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = f'{obj["metadata"].get("namespace", "")}/{obj["metadata"]["name"]}'
        store = self.objects.setdefault(collection, {})
        kind = "MODIFIED" if key in store else "ADDED"
        store[key] = obj
        self.history.append((self.rv, collection, {"type": kind, "object": obj}))
        async with self.changed:
            self.changed.notify_all()

    async def serve(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                path, _, query = target.partition("?")
                q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
                if method == "GET" and q.get("watch") == "true":
                    await self.watch(writer, path, q)
                    return
                code, obj = await self.answer(method, path, q, headers, body)
                data = json.dumps(obj).encode()
                writer.write(f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def answer(self, method, path, q, headers, body):
        if path == "/version":
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
        parsed = self.parse(path)
        if parsed is None:
            return 404, {"kind": "Status", "code": 404}
        collection, ns, name = parsed
        if method == "GET" and name is None:
            labels = q.get("labelSelector", "")
            items = [o for o in self.objects.get(collection, {}).values()
                     if self.matches(o, ns, labels)]
            return 200, {"kind": "List", "apiVersion": "v1",
                         "metadata": {"resourceVersion": str(self.rv)}, "items": items}
        if method == "PATCH" and name is not None \
                and headers.get("content-type") == "application/apply-patch+yaml":
            obj = json.loads(body)
            await self.put(collection, obj)
            return 200, obj
        if method == "DELETE" and name is not None:
            key = f"{ns or ''}/{name}"
            store = self.objects.get(collection, {})
            if key not in store:
                return 404, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Failure", "reason": "NotFound", "code": 404}
            want = (json.loads(body or b"{}").get("preconditions") or {}).get("resourceVersion")
            if want is not None and store[key]["metadata"]["resourceVersion"] != want:
                return 409, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Failure", "reason": "Conflict", "code": 409}
            obj = store.pop(key)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.history.append((self.rv, collection, {"type": "DELETED", "object": obj}))
            async with self.changed:
                self.changed.notify_all()
            return 200, obj
        return 405, {"kind": "Status", "code": 405}

    async def watch(self, writer, path, q):
        parsed = self.parse(path)
        if parsed is None:
            return
        collection, ns, _ = parsed
        labels = q.get("labelSelector", "")
        sent = int(q.get("resourceVersion") or 0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        deadline = asyncio.get_running_loop().time() + float(q.get("timeoutSeconds", 290))
        i = 0
        while asyncio.get_running_loop().time() < deadline:
            while i < len(self.history):
                rv, c, event = self.history[i]
                i += 1
                if rv > sent and c == collection and self.matches(event["object"], ns, labels):
                    line = (json.dumps(event) + "\n").encode()
                    writer.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    sent = rv
            await writer.drain()
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait(), 5)
                except asyncio.TimeoutError:
                    pass
        writer.write(b"0\r\n\r\n")
        await writer.drain()
