"""The official Ollama Python SDK against the emulator's native /api endpoints."""

import json

import ollama
import pytest

from conftest import MODEL, WEATHER_TOOL_SCHEMA


@pytest.fixture()
def client(base_url):
    return ollama.Client(host=base_url, timeout=30)


def test_list_show_and_version_shapes(client):
    models = client.list().models
    assert [m.model for m in models] == ["toy:latest"]
    assert models[0].details.family == "toy"
    shown = client.show(MODEL)
    assert "tools" in shown.capabilities
    assert shown.modelinfo["toy.context_length"] == 65536


def test_chat(client):
    response = client.chat(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert response.done
    assert response.message.role == "assistant"
    assert response.message.content
    assert response.eval_count > 0


def test_chat_stream_matches_the_whole_answer(client):
    messages = [{"role": "user", "content": "stream this"}]
    whole = client.chat(model=MODEL, messages=messages).message.content
    parts = list(client.chat(model=MODEL, messages=messages, stream=True))
    assert parts[-1].done
    assert parts[-1].done_reason == "stop"
    assert "".join(p.message.content for p in parts) == whole


def test_chat_tools(client):
    tool = {"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": WEATHER_TOOL_SCHEMA}}
    response = client.chat(model=MODEL, messages=[{"role": "user", "content": "weather in Oslo"}], tools=[tool])
    call = response.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "emulated", "unit": "celsius"}


def test_generate(client):
    response = client.generate(model=MODEL, prompt="Why is the sky blue?")
    assert response.done
    assert response.response
    assert response.context


def test_generate_stream(client):
    whole = client.generate(model=MODEL, prompt="count").response
    parts = list(client.generate(model=MODEL, prompt="count", stream=True))
    assert len(parts) > 2
    assert parts[-1].done
    assert "".join(p.response for p in parts) == whole


def test_generate_json_format(client):
    response = client.generate(model=MODEL, prompt="status as json", format="json")
    assert isinstance(json.loads(response.response), dict)


def test_keep_alive_and_ps(client):
    client.generate(model=MODEL, prompt="", keep_alive="10m", options={"num_ctx": 65536})
    running = client.ps().models
    assert [m.model for m in running] == ["toy:latest"]
    assert running[0].context_length == 65536
    client.generate(model=MODEL, prompt="", keep_alive=0)
    assert client.ps().models == []


def test_pull_progress(client):
    statuses = [p.status for p in client.pull("tiny-extra", stream=True)]
    assert statuses[0] == "pulling manifest"
    assert statuses[-1] == "success"
    assert "tiny-extra:latest" in [m.model for m in client.list().models]
    client.delete("tiny-extra")


def test_unknown_model_raises_with_status(client):
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="ghost", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404
    assert "not found" in caught.value.error
