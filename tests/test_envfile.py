"""The service's environment file means the same under systemd and launchd.

systemd reads it itself (EnvironmentFile=); for launchd we read it. Every line we accept must
give what systemd's own parser gives (`load_env_file` in libsystemd-shared, called through
ctypes): hypothesis writes the lines, systemd is the oracle. What the two could read
differently is refused with a message naming the file and the line.
"""

from __future__ import annotations

import ctypes
import glob
import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_employee.base.errors import ConfigError
from ai_employee.daemon.envfile import parse_env_text


def _libsystemd_shared() -> ctypes.CDLL:
    found = sorted(glob.glob("/usr/lib/*/systemd/libsystemd-shared-*.so"))
    found += sorted(glob.glob("/lib/systemd/libsystemd-shared-*.so"))
    assert found, "systemd's shared library is missing (scripts/system-packages.sh installs it)"
    lib = ctypes.CDLL(found[0])
    lib.load_env_file.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)),
    ]
    return lib


LIB = _libsystemd_shared()


def systemd_reads(text: str) -> dict[str, str] | str:
    """What systemd's EnvironmentFile= parser makes of `text` (or its error)."""
    with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
        handle.write(text.encode("utf-8"))
    try:
        found = ctypes.POINTER(ctypes.c_char_p)()
        code = LIB.load_env_file(None, handle.name.encode(), ctypes.byref(found))
    finally:
        os.unlink(handle.name)
    if code < 0:
        return f"error {code}"
    values: dict[str, str] = {}
    i = 0
    while found and found[i] is not None:
        key, _, value = found[i].decode("utf-8").partition("=")
        values[key] = value
        i += 1
    return values


def ours(text: str) -> dict[str, str] | None:
    try:
        return parse_env_text(text, "f")
    except ConfigError:
        return None


LINES = [
    "A=plain",
    "A= spaced value  ",
    'A="dq"',
    "A='sq'",
    'A="a\\"b"',
    'A="a\\\\b"',
    'A="a\\$b"',
    'A="a\\`b"',
    "A=#not a comment",
    "  # comment\nA=1",
    "; comment\nA=1",
    "A=1\nA=2",
    "A=é ✓",
    "A=\u00a0x\u00a0",
    "A=1\r\nB=2\r\n",
    "A=$HOME `x`",
    "ANTHROPIC_API_KEY=sk-ant-api03-abc_DEF-123",
    "A=",
    'A=""',
]


@pytest.mark.parametrize("text", LINES)
def test_what_we_accept_systemd_reads_the_same(text: str) -> None:
    accepted = ours(text)
    assert accepted is not None, text
    assert accepted == systemd_reads(text)


REFUSED = [
    ("A=a\\b", "systemd reads a backslash or a quote in 'a\\\\b' differently"),
    ("A=x\\\nB=2", "systemd reads a backslash or a quote in 'x\\\\' differently"),
    ("A='it''s'", "a ' or a \\ cannot be written in single quotes"),
    ('A="a"b', "text after the closing quote in '\"a\"b'"),
    ('A="a"b"', "a double quote inside a quoted value needs \\"),
    ('A="a\\nb"', "in double quotes a backslash may only escape"),
    ("A='multi\nline'", 'the quote that opens "\'multi" is never closed'),
    ("A=x\x0cy", "a control character in 'A=x\\x0cy'"),
    ("export A=1", "expected KEY=value, found 'export A=1'"),
    ("A", "expected KEY=value, found 'A'"),
    ("1A=2", "expected KEY=value, found '1A=2'"),
]


@pytest.mark.parametrize(("text", "says"), REFUSED)
def test_what_systemd_could_read_differently_is_one_clear_error(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_env_text(text, "service.env")
    assert str(raised.value).startswith("service.env:")
    assert says in str(raised.value)


_TRICKY = st.sampled_from([*" \t\"'\\$`#;=\u00a0\r\n", "a", "B", "_", "1", "é", "x y"])


@settings(max_examples=400, deadline=None)
@given(
    key=st.sampled_from(["A", "KEY_1", "_x", "1bad", "A B", ""]),
    value=st.lists(_TRICKY, max_size=12).map("".join),
    lead=st.sampled_from(["", " ", "\t", "#", ";"]),
)
def test_any_line_we_accept_means_to_systemd_what_it_means_to_us(
    key: str, value: str, lead: str
) -> None:
    text = f"{lead}{key}={value}\n"
    accepted = ours(text)
    if accepted is not None:
        assert accepted == systemd_reads(text), text
