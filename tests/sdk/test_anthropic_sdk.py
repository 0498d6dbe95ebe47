"""The official Anthropic Python SDK against the emulator's /v1/messages.

As with Claude Code, the base URL has no /v1: the SDK appends /v1/messages itself.
"""

import anthropic
import pytest

from conftest import MODEL, WEATHER_TOOL_SCHEMA

WEATHER_TOOL = {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_TOOL_SCHEMA}


@pytest.fixture()
def client(base_url):
    return anthropic.Anthropic(base_url=base_url, api_key="ollama", max_retries=0, timeout=30)


def test_messages_create(client):
    message = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


def test_max_tokens_truncates(client):
    message = client.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hello"}])
    assert message.stop_reason == "max_tokens"


def test_system_prompt_and_multi_turn(client):
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system="You are terse.",
        messages=[
            {"role": "user", "content": "My name is Alice"},
            {"role": "assistant", "content": "Hello Alice"},
            {"role": "user", "content": "What is my name?"},
        ],
    )
    assert message.content[0].text


def test_messages_stream_text(client):
    whole = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "stream"}])
    with client.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "stream"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == whole.content[0].text
    assert final.content[0].text == whole.content[0].text
    assert final.stop_reason == "end_turn"


def test_raw_stream_event_sequence(client):
    stream = client.messages.create(
        model=MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": "events"}]
    )
    types = [event.type for event in stream]
    assert types[0] == "message_start"
    assert types[1] == "content_block_start"
    assert set(types[2:-3]) == {"content_block_delta"}
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_tool_use(client):
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Paris? Use get_weather."}],
    )
    assert message.stop_reason == "tool_use"
    block = next(b for b in message.content if b.type == "tool_use")
    assert block.name == "get_weather"
    assert block.input == {"city": "emulated", "unit": "celsius"}

    follow_up = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "18 C"}]},
        ],
    )
    assert follow_up.stop_reason == "end_turn"
    assert follow_up.content[0].type == "text"


def test_tool_use_streamed(client):
    with client.messages.stream(
        model=MODEL, max_tokens=256, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "get_weather for Rome"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[0]
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert block.input["city"] == "emulated"


def test_unknown_model_is_a_not_found_error(client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="ghost", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_messages_absent_before_0_14(old_base_url):
    old = anthropic.Anthropic(base_url=old_base_url, api_key="ollama", max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        old.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
