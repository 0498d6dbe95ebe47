"""Starts the ollama-emulator binary (a test double) for the official-SDK tests.

EMULATOR_BIN names the binary (default: target/debug/ollama-emulator under the repo
root). A missing binary is a failure, not a skip: CI must not pass without running.
"""

import os
import pathlib
import subprocess

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
    """Base URL of an emulated Ollama 0.14.0 with one model, `toy`."""
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
