"""A small stand-in for the Hugging Face Hub, enough for the real huggingface_hub client to create a
repository and commit files over HTTP. It records what it was sent so tests can assert on it."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self, token: str = "hf_test_token", fail_with: int | None = None):
        self.token, self.fail_with = token, fail_with
        self.repos: dict[str, dict] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.commits: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.auth_headers: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, payload=None):
                body = json.dumps(payload if payload is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _authorised(self) -> bool:
                auth = self.headers.get("Authorization", "")
                hub.auth_headers.append(auth)
                if hub.fail_with:
                    self._reply(hub.fail_with, {"error": f"failing with {hub.fail_with} on purpose"})
                    return False
                if auth != f"Bearer {hub.token}":
                    self._reply(401, {"error": "Invalid credentials in Authorization header"})
                    return False
                return True

            def do_HEAD(self):
                hub.requests.append(("HEAD", self.path))
                self._reply(404, {"error": "not found"})

            def do_GET(self):
                hub.requests.append(("GET", self.path))
                self._reply(404, {"error": "not found"})

            def do_POST(self):
                hub.requests.append(("POST", self.path))
                body = self._body()
                path = self.path.split("?")[0]
                if path == "/api/validate-yaml":
                    return self._reply(200, {})
                if not self._authorised():
                    return
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo_id = f"{req.get('organization') or 'me'}/{req['name']}"
                    hub.repos[repo_id] = req
                    return self._reply(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
                parts = path.strip("/").split("/")  # api/models/OWNER/NAME/(preupload|commit)/main
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                                for f in files
                            ]
                        },
                    )
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo_id = f"{parts[2]}/{parts[3]}"
                    commit = {"repo_id": repo_id, "files": {}}
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "header":
                            commit["header"] = item["value"]
                        elif item["key"] == "file":
                            commit["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    hub.commits.append(commit)
                    hub.files.setdefault(repo_id, {}).update(commit["files"])
                    host = self.headers["Host"]
                    return self._reply(
                        200,
                        {
                            "success": True,
                            "commitOid": "a" * 40,
                            "commitUrl": f"http://{host}/{repo_id}/commit/{'a' * 40}",
                        },
                    )
                self._reply(404, {"error": f"unknown endpoint {path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
