"""A stand-in agent for the screenshots (scripts/screenshots.py): it speaks Claude Code's
stream-json, writes a small app into its work dir, and waits for a `go` file before it ends,
so a picture can catch it running. Not used by the service or the tests."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def say(message: dict[str, object]) -> None:
    print(json.dumps(message), flush=True)
    time.sleep(0.15)


def main() -> None:
    work = Path(sys.argv[1])
    say({"type": "system", "subtype": "init", "session_id": "3f2c9a1e-demo", "model": "claude"})
    say(
        {
            "type": "assistant",
            "message": {
                "content": [
                    {
                        "type": "text",
                        "text": "I'll build a small greeter CLI with argparse and a test.",
                    }
                ]
            },
        }
    )
    code = (
        "import argparse\n\n\ndef main():\n    p = argparse.ArgumentParser()\n"
        '    p.add_argument("name")\n    print(f"Hello, {p.parse_args().name}!")\n'
    )
    say(
        {
            "type": "assistant",
            "message": {
                "content": [
                    {
                        "type": "tool_use",
                        "name": "Write",
                        "input": {"file_path": "greeter.py", "content": code},
                    }
                ]
            },
        }
    )
    (work / "greeter.py").write_text(code + "\n\nif __name__ == '__main__':\n    main()\n")
    say(
        {
            "type": "user",
            "message": {
                "content": [
                    {"type": "tool_result", "content": "File created successfully at: greeter.py"}
                ]
            },
        }
    )
    say(
        {
            "type": "assistant",
            "message": {
                "content": [
                    {
                        "type": "tool_use",
                        "name": "Bash",
                        "input": {"command": "python3 greeter.py Ada"},
                    }
                ]
            },
        }
    )
    say(
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "content": "Hello, Ada!"}]},
        }
    )
    say(
        {
            "type": "assistant",
            "message": {"content": [{"type": "text", "text": "It runs. Now a test with pytest…"}]},
        }
    )
    (work / "test_greeter.py").write_text("def test_placeholder():\n    assert True\n")
    while not (work / "go").exists():
        time.sleep(0.05)
    say(
        {
            "type": "result",
            "subtype": "success",
            "result": "Built greeter.py and its test.",
            "total_cost_usd": 0.0831,
            "session_id": "3f2c9a1e-demo",
        }
    )


if __name__ == "__main__":
    main()
