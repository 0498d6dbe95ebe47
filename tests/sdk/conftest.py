"""Starts the ollama-emulator binary (a test double) for the official-SDK tests.

EMULATOR_BIN names the binary (default: target/debug/ollama-emulator under the repo
root). A missing binary is a failure, not a skip: CI must not pass without running.
"""

import ipaddress
import os
import pathlib
import re
import socket
import subprocess

# LiteLLM fetches its model-cost map from GitHub at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = "toy"


def _binary() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("EMULATOR_BIN", REPO_ROOT / "target" / "debug" / "ollama-emulator"))
    if not path.is_file():
        pytest.fail(f"emulator binary not found at {path}; run `cargo build -p ollama-emulator` or set EMULATOR_BIN")
    return path


def _start(*extra: str):
    process = subprocess.Popen(
        [str(_binary()), "--listen", "127.0.0.1:0", "--token-delay-ms", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.readline().strip()
    if not first.startswith("listening on "):
        process.kill()
        pytest.fail(f"emulator did not start: {first!r} {process.stderr.read()!r}")
    return process, "http://" + first.removeprefix("listening on ")


@pytest.fixture(scope="session")
def base_url():
    """Base URL of an emulated Ollama (the newest profile) with one model, `toy`."""
    process, url = _start()
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def old_base_url():
    """An emulated Ollama 0.13.0, which lacks /v1/responses and /v1/messages."""
    process, url = _start("--version", "0.13.0")
    yield url
    process.terminate()
    process.wait(timeout=10)


WEATHER_TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}


EMBED_MODEL = "nomic-embed-text"


def profiles() -> list[str]:
    """The version profiles, as `ollama-emulator --help` lists them."""
    if not _binary_path().is_file():
        return ["missing-binary"]
    text = subprocess.run([str(_binary_path()), "--help"], capture_output=True, text=True, check=True).stdout
    found = re.findall(r"^\s+(\d+\.\d+\.\d+)\s+\(", text, flags=re.M)
    return found or ["no-profiles-in-help"]


def _binary_path() -> pathlib.Path:
    return pathlib.Path(os.environ.get("EMULATOR_BIN", REPO_ROOT / "target" / "debug" / "ollama-emulator"))


@pytest.fixture(scope="session", params=profiles())
def profile(request):
    """(version, base URL) of an emulator per version profile, with a chat and an embedding model."""
    process, url = _start("--ollama-version", request.param, "--models", f"{MODEL},{EMBED_MODEL}")
    yield request.param, url
    process.terminate()
    process.wait(timeout=10)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


# --- No connection may leave loopback -------------------------------------------------
# Third-party libraries reach outside hosts on their own (tiktoken downloads, model-cost
# maps, telemetry). Every connect and name lookup is checked; one that leaves loopback
# is refused and fails the test that made it.

_escapes: list[str] = []
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _loopback(host) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _escapes.append(f"connect to {address!r}")
        raise ConnectionRefusedError(f"tests/sdk: connection outside loopback refused: {address!r}")


def _connect(self, address):
    _guard(self, address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    _guard(self, address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
        _escapes.append(f"name lookup of {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"tests/sdk: lookup outside loopback refused: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
socket.getaddrinfo = _getaddrinfo


@pytest.fixture(autouse=True)
def stays_on_loopback():
    """Fails the test if anything it ran tried to leave loopback."""
    before = len(_escapes)
    yield
    escaped = _escapes[before:]
    assert not escaped, f"traffic outside loopback: {escaped}"
