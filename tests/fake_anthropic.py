"""fake_anthropic.py - a stdlib-only fake of the Anthropic Messages API for driving the
real Claude Code CLI (`claude -p ...`) in tests.

Serves on 127.0.0.1 (random port by default) with ThreadingHTTPServer.

Endpoints
---------
POST /v1/messages               scripted replies (SSE when body has "stream": true,
                                plain JSON otherwise)
POST /v1/messages/count_tokens  {"input_tokens": <rough estimate>}
HEAD <any path>                 200 {} (the CLI sends HEAD /api/hello when
                                CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC is unset)
GET /                           200 {}
anything else                   404 Anthropic-style not_found_error JSON (logged)
GET  /_fake/log                 JSON list of everything logged so far
POST /_fake/enqueue             body: one step (object) or a list of steps
POST /_fake/reset               clears queue + log

Script steps (dicts) -- consumed FIFO, one per *main-loop* /v1/messages request:
  {"kind": "text", "text": "Done."}
  {"kind": "tool_use", "name": "Write",
       "input": {"file_path": "/abs/path/hello.txt", "content": "hi\n"}}
       "{cwd}" in any input string is replaced by the working directory the CLI
       announced in the request ("Primary working directory: ..."), so
       {"file_path": "{cwd}/hello.txt"} works without knowing the tmp dir.
       (optional "text": "..." -> a text block before the tool_use block,
        optional "id": "toolu_...")
  {"kind": "error", "status": 429, "type": "rate_limit_error",
       "message": "...", "headers": {"retry-after": "0"}}
       (types seen in the real API: invalid_request_error 400,
        authentication_error 401, permission_error 403, not_found_error 404,
        request_too_large 413, rate_limit_error 429, api_error 500,
        overloaded_error 529)
  {"kind": "hang"}            accept the request and never answer (until server stop)
  {"kind": "stall"}           send 200 + SSE headers + message_start, then go silent
  {"kind": "drop"}            close the connection without sending a response
  {"kind": "sleep", "seconds": 2, "then": {...another step...}}
  A text/tool_use step with "force_json": true answers with a plain JSON message
  even when the request asked for stream=true (to test the CLI's tolerance).
  Any step may carry "repeat": N (serve it N times) or "sticky": true (never
  consumed; every later request gets it).
When the queue is empty the `default` step is served (text "OK").

Observed with Claude Code 2.1.328 (see FINDINGS.md): exactly ONE POST
/v1/messages?beta=true per agent turn, always stream=true, no count_tokens, no
side/haiku calls when CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1. `messages`
contains a non-standard {"role": "system"} entry (the environment block with
"Primary working directory: ..."). If a stream=true request gets a non-SSE
(JSON) reply, the CLI immediately re-sends the same turn with stream=false,
max_tokens=64000 -- so the JSON path below is needed.

Side requests: Claude Code may make extra /v1/messages calls that are not part of
the agent loop (e.g. a max_tokens=1 quota probe, or haiku calls for titles /
summaries). `is_side_request(body)` decides; side requests never consume the
script and get `side_default` (a short text). Tune it if a CLI version changes.

In-process use (pytest fixture sketch)
--------------------------------------
    from fake_api import FakeAnthropic
    @pytest.fixture
    def fake_api():
        srv = FakeAnthropic().start()
        yield srv            # srv.url, srv.enqueue(...), srv.requests, srv.main_requests()
        srv.stop()

    env = {**os.environ, "HOME": str(tmp_home), "TMPDIR": str(tmp_tmp),
           "ANTHROPIC_BASE_URL": srv.url, "ANTHROPIC_API_KEY": "test",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "CLAUDE_CODE_MAX_RETRIES": "0",      # else 10 retries, ~3 min on 5xx
           "API_TIMEOUT_MS": "10000"}           # else 600 s per attempt on a hang
    env.pop("CLAUDECODE", None)
    # and ALWAYS put a wall-clock timeout on the subprocess: a stream that stalls
    # after the response headers is never timed out by the CLI.
    # See test_example_fixture.py for a working example.

CLI use
-------
    python3 fake_api.py [--port 0] [--script steps.json] [--log log.jsonl]
                        [--port-file FILE] [--dump-dir DIR]
Prints "PORT <n>" on stdout once listening (and writes it to --port-file).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INTERESTING_HEADERS = (
    "x-api-key",
    "authorization",
    "anthropic-version",
    "anthropic-beta",
    "user-agent",
    "x-app",
    "x-stainless-retry-count",
    "x-stainless-timeout",
    "x-claude-code-session-id",
    "content-type",
    "accept",
    "x-stainless-helper-method",
)


def _usage(inp=10, out=5):
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def is_side_request(body: dict) -> bool:
    """Requests that are not turns of the agent loop."""
    if not isinstance(body, dict):
        return True
    if body.get("max_tokens") == 1:  # quota / connectivity probe
        return True
    # The agent loop always sends tools; title/summary/haiku helpers do not.
    return not body.get("tools")


def system_text(body: dict) -> str:
    sysp = body.get("system")
    if isinstance(sysp, str):
        return sysp
    if isinstance(sysp, list):
        return "\n".join(b.get("text", "") for b in sysp if isinstance(b, dict))
    return ""


CWD_RE = re.compile(r"Primary working directory: ([^\n]+)")


def extract_cwd(body: dict):
    """The CLI puts 'Primary working directory: <abs path>' in an environment
    block (2.1.328: a role:"system" entry of `messages`; older versions: the
    top-level `system`). Search the whole request to be version-agnostic."""
    m = CWD_RE.search(
        system_text(body) + "\n" + json.dumps(body.get("messages", [])).replace("\\n", "\n")
    )
    return m.group(1).strip() if m else None


def _subst(obj, mapping):
    if isinstance(obj, str):
        for k, v in mapping.items():
            if v is not None:
                obj = obj.replace("{" + k + "}", v)
        return obj
    if isinstance(obj, list):
        return [_subst(x, mapping) for x in obj]
    if isinstance(obj, dict):
        return {k: _subst(v, mapping) for k, v in obj.items()}
    return obj


def summarize_body(body: dict) -> dict:
    if not isinstance(body, dict):
        return {"raw": str(body)[:200]}
    msgs = body.get("messages") or []

    def blk_summary(m):
        c = m.get("content")
        if isinstance(c, str):
            return [{"type": "text", "len": len(c), "head": c[:80]}]
        out = []
        for b in c or []:
            t = b.get("type")
            d = {"type": t}
            if t == "text":
                d["head"] = b.get("text", "")[:80]
            elif t == "tool_use":
                d["name"] = b.get("name")
                d["id"] = b.get("id")
            elif t == "tool_result":
                d["tool_use_id"] = b.get("tool_use_id")
                d["is_error"] = b.get("is_error")
                cc = b.get("content")
                d["content"] = (cc if isinstance(cc, str) else json.dumps(cc))[:200]
            out.append(d)
        return out

    return {
        "model": body.get("model"),
        "stream": body.get("stream"),
        "max_tokens": body.get("max_tokens"),
        "n_messages": len(msgs),
        "roles": [m.get("role") for m in msgs],
        "last_message": blk_summary(msgs[-1]) if msgs else None,
        "tools": [t.get("name") for t in body.get("tools") or []],
        "system_len": len(system_text(body)),
        "thinking": body.get("thinking"),
        "metadata": body.get("metadata"),
        "keys": sorted(body.keys()),
    }


class FakeAnthropic:
    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        log_path=None,
        dump_dir=None,
        default=None,
        side_default=None,
    ):
        self.host, self.port = host, port
        self.log_path, self.dump_dir = log_path, dump_dir
        self.default = default or {"kind": "text", "text": "OK"}
        self.side_default = side_default or {"kind": "text", "text": "Title"}
        self.queue: list[dict] = []
        self.requests: list[dict] = []  # full records (incl. parsed body)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.httpd = None
        self.thread = None
        self._seq = 0

    # ---------------------------------------------------------------- script
    def enqueue(self, *steps):
        with self.lock:
            for s in steps:
                if isinstance(s, list):
                    self.queue.extend(s)
                else:
                    self.queue.append(s)
        return self

    def _next_step(self, side: bool):
        if side:
            return self.side_default
        with self.lock:
            if not self.queue:
                return self.default
            s = self.queue[0]
            if s.get("sticky"):
                return s
            rep = s.get("repeat", 1)
            if rep > 1:
                s["repeat"] = rep - 1
            else:
                self.queue.pop(0)
            return s

    def main_requests(self):
        return [
            r
            for r in self.requests
            if r["path"].startswith("/v1/messages")
            and not r["path"].endswith("count_tokens")
            and not r["side"]
        ]

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------- lifecycle
    def start(self):
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self.httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()  # releases "hang" handlers
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    # --------------------------------------------------------------- logging
    def record(self, rec: dict):
        with self.lock:
            self._seq += 1
            rec["seq"] = self._seq
            self.requests.append(rec)
        if self.dump_dir and rec.get("body") is not None:
            os.makedirs(self.dump_dir, exist_ok=True)
            with open(os.path.join(self.dump_dir, f"req{rec['seq']:03d}.json"), "w") as f:
                json.dump({k: v for k, v in rec.items()}, f, indent=1)
        if self.log_path:
            slim = {k: v for k, v in rec.items() if k != "body"}
            with open(self.log_path, "a") as f:
                f.write(json.dumps(slim) + "\n")


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeAnthropic = None
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # silence default stderr logging
        pass

    # -- helpers
    def _read_body(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except Exception:
            return {"_unparsed": raw[:500].decode("utf8", "replace")}

    def _send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:12])
        for k, v in (extra_headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _log(self, body, side=None, step=None):
        f = self.server_fake
        rec = {
            "t": round(time.time(), 3),
            "method": self.command,
            "path": self.path,
            "headers": {k: self.headers.get(k) for k in INTERESTING_HEADERS if self.headers.get(k)},
            "side": side,
            "step": (step or {}).get("kind"),
            "summary": summarize_body(body) if body is not None else None,
            "body": body,
        }
        f.record(rec)
        return rec

    # -- verbs
    def do_HEAD(self):
        self._log(None)
        self._send_json(200, {})

    def do_GET(self):
        f = self.server_fake
        if self.path.startswith("/_fake/log"):
            with f.lock:
                return self._send_json(
                    200, [{k: v for k, v in r.items() if k != "body"} for r in f.requests]
                )
        self._log(None)
        if self.path in ("/", ""):
            return self._send_json(200, {})
        self._send_json(
            404,
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": f"Not found: {self.path}"},
            },
        )

    def do_POST(self):
        f = self.server_fake
        body = self._read_body()
        path = self.path.split("?")[0]
        if path == "/_fake/enqueue":
            f.enqueue(body if isinstance(body, list) else [body])
            return self._send_json(200, {"queued": len(f.queue)})
        if path == "/_fake/reset":
            with f.lock:
                f.queue.clear()
                f.requests.clear()
            return self._send_json(200, {})
        if path == "/v1/messages/count_tokens":
            self._log(body)
            n = len(json.dumps(body or {})) // 4
            return self._send_json(200, {"input_tokens": n})
        if path == "/v1/messages":
            side = is_side_request(body)
            step = f._next_step(side)
            self._log(body, side=side, step=step)
            return self._serve_step(step, body or {})
        self._log(body)
        self._send_json(
            404,
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": f"Not found: {path}"},
            },
        )

    # -- scripted responses
    def _serve_step(self, step, body):
        f = self.server_fake
        kind = step.get("kind", "text")
        if kind == "sleep":
            f.stop_event.wait(step.get("seconds", 1))
            return self._serve_step(step.get("then") or f.default, body)
        if kind == "hang":
            f.stop_event.wait()  # until server stop
            self.close_connection = True
            return
        if kind == "drop":  # close the socket without any response
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        if kind == "stall":  # 200 + SSE headers + message_start, then silence
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(
                (
                    "event: message_start\ndata: "
                    + json.dumps(
                        {
                            "type": "message_start",
                            "message": {
                                "id": "msg_fake_stall",
                                "type": "message",
                                "role": "assistant",
                                "model": body.get("model") or "claude-fake",
                                "content": [],
                                "stop_reason": None,
                                "stop_sequence": None,
                                "usage": _usage(10, 1),
                            },
                        }
                    )
                    + "\n\n"
                ).encode()
            )
            self.wfile.flush()
            f.stop_event.wait()
            self.close_connection = True
            return
        if kind == "error":
            status = step.get("status", 500)
            etype = step.get("type") or {
                400: "invalid_request_error",
                401: "authentication_error",
                403: "permission_error",
                404: "not_found_error",
                429: "rate_limit_error",
                529: "overloaded_error",
            }.get(status, "api_error")
            msg = step.get("message", f"fake {etype}")
            return self._send_json(
                status,
                {"type": "error", "error": {"type": etype, "message": msg}},
                step.get("headers"),
            )
        # build content blocks
        blocks = []
        if kind == "text":
            blocks.append({"type": "text", "text": step.get("text", "OK")})
            stop_reason = "end_turn"
        elif kind == "tool_use":
            if step.get("text"):
                blocks.append({"type": "text", "text": step["text"]})
            blocks.append(
                {
                    "type": "tool_use",
                    "id": step.get("id") or "toolu_" + uuid.uuid4().hex[:20],
                    "name": step["name"],
                    "input": _subst(step.get("input", {}), {"cwd": extract_cwd(body)}),
                }
            )
            stop_reason = "tool_use"
        else:
            return self._send_json(
                500,
                {"type": "error", "error": {"type": "api_error", "message": f"bad step {kind}"}},
            )
        model = body.get("model") or "claude-fake"
        msg_id = "msg_fake_" + uuid.uuid4().hex[:16]
        usage = _usage(step.get("input_tokens", 10), step.get("output_tokens", 5))
        if not body.get("stream") or step.get("force_json"):
            return self._send_json(
                200,
                {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
        # ---- SSE
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", "req_fake_" + uuid.uuid4().hex[:12])
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def ev(name, data):
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        ev(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            },
        )
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                ev(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                ev(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "text_delta", "text": b["text"]},
                    },
                )
            else:
                ev(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {
                            "type": "tool_use",
                            "id": b["id"],
                            "name": b["name"],
                            "input": {},
                        },
                    },
                )
                ev(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": json.dumps(b["input"]),
                        },
                    },
                )
            ev("content_block_stop", {"type": "content_block_stop", "index": i})
        ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
        ev("message_stop", {"type": "message_stop"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--script", help="JSON file: list of steps")
    ap.add_argument("--log", help="append JSONL request log here")
    ap.add_argument("--dump-dir", help="write full request bodies here")
    ap.add_argument("--port-file")
    a = ap.parse_args()
    srv = FakeAnthropic(port=a.port, log_path=a.log, dump_dir=a.dump_dir)
    if a.script:
        with open(a.script) as fh:
            srv.enqueue(json.load(fh))
    srv.start()
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as fh:
            fh.write(str(srv.port))
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"PORT {srv.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
