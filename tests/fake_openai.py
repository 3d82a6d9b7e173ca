"""A fake OpenAI Responses API on 127.0.0.1 for Codex (`@zed-industries/codex-acp`): each POST
to `/v1/responses` takes the next scripted turn and streams it as server-sent events, as the
real API does (`response.created`, each output item, `response.completed` with usage). Requests
are kept for the test to read; anything else is a 404. Nothing leaves the machine."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Item = dict[str, Any]


def message(text: str) -> Item:
    """An assistant message."""
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def exec_command(command: str, call_id: str = "call_1", escalated: bool = False) -> Item:
    """A call of Codex's `exec_command` tool; `escalated`: run outside its sandbox, which
    Codex asks the client's permission for (ACP `session/request_permission`)."""
    arguments: dict[str, Any] = {"cmd": command}
    if escalated:
        arguments |= {"sandbox_permissions": "require_escalated", "justification": "write it"}
    return {
        "type": "function_call",
        "name": "exec_command",
        "arguments": json.dumps(arguments),
        "call_id": call_id,
    }


class FakeOpenAI:
    def __init__(self) -> None:
        self.turns: deque[list[Item]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake.paths.append(f"GET {self.path}")
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                fake.paths.append(f"POST {self.path}")
                if not self.path.rstrip("/").endswith("/responses"):
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                fake.requests.append(json.loads(body or b"{}"))
                items = fake.turns.popleft() if fake.turns else [message("(nothing scripted)")]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                number = len(fake.requests)
                events: list[Item] = [
                    {"type": "response.created", "response": {"id": f"resp_{number}"}}
                ]
                for index, item in enumerate(items):
                    events.append(
                        {
                            "type": "response.output_item.done",
                            "output_index": index,
                            "item": {"id": f"item_{number}_{index}", **item},
                        }
                    )
                usage = {
                    "input_tokens": 100,
                    "input_tokens_details": None,
                    "output_tokens": 20,
                    "output_tokens_details": None,
                    "total_tokens": 120,
                }
                events.append(
                    {
                        "type": "response.completed",
                        "response": {"id": f"resp_{number}", "usage": usage},
                    }
                )
                for event in events:
                    self.wfile.write(
                        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
                    )
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def enqueue(self, *turns: list[Item]) -> None:
        self.turns.extend(turns)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
