"""The official SDKs against every version profile of the emulator: chat, stream, tools,
structured output and embeddings, each family where that version has it."""

import json

import anthropic
import ollama
import openai
import pytest

from conftest import EMBED_MODEL, MODEL, WEATHER_TOOL_SCHEMA, version_tuple

OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_TOOL_SCHEMA},
}
STATUS_SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok"]}, "count": {"type": "integer"}},
    "required": ["status", "count"],
}


def test_openai_chat_stream_tools_schema_embeddings(profile):
    version, url = profile
    client = openai.OpenAI(base_url=url + "/v1", api_key="ollama", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hello"}]
    assert client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
    text = "".join(
        c.choices[0].delta.content or "" for c in client.chat.completions.create(model=MODEL, messages=messages, stream=True) if c.choices
    )
    assert text
    called = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather in Oslo"}], tools=[OPENAI_TOOL]
    )
    assert called.choices[0].message.tool_calls[0].function.name == "get_weather"
    # Streamed tool calls accumulate by index, as the SDK's helpers do.
    streamed = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather in Oslo"}], tools=[OPENAI_TOOL], stream=True
    )
    names = [tc.function.name for c in streamed if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert names == ["get_weather"], version
    structured = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "status"}],
        response_format={"type": "json_schema", "json_schema": {"name": "status", "schema": STATUS_SCHEMA}},
    )
    assert json.loads(structured.choices[0].message.content)["status"] == "ok"
    # The SDK asks for base64 unless told otherwise, and decodes it.
    vectors = client.embeddings.create(model=EMBED_MODEL, input=["a", "b"]).data
    assert len(vectors) == 2 and len(vectors[0].embedding) == 64
    floats = client.embeddings.create(model=EMBED_MODEL, input="a", encoding_format="float").data[0].embedding
    assert floats == pytest.approx(vectors[0].embedding, abs=1e-6)
    completion = client.completions.create(model=MODEL, prompt="def add(a, b):", suffix="\n", max_tokens=8)
    assert completion.choices[0].text


def test_openai_responses_where_the_version_has_them(profile):
    version, url = profile
    client = openai.OpenAI(base_url=url + "/v1", api_key="ollama", max_retries=0, timeout=30)
    if version_tuple(version) < (0, 13, 3):
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model=MODEL, input="hi")
        return
    assert client.responses.create(model=MODEL, input="hi").output_text
    events = [e.type for e in client.responses.create(model=MODEL, input="hi", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"


def test_anthropic_where_the_version_has_it(profile):
    version, url = profile
    client = anthropic.Anthropic(base_url=url, api_key="ollama", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "hello"}]
    if version_tuple(version) < (0, 14, 0):
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model=MODEL, max_tokens=32, messages=messages)
        return
    assert client.messages.create(model=MODEL, max_tokens=32, messages=messages).content[0].text
    tool = {"name": "get_weather", "description": "weather", "input_schema": WEATHER_TOOL_SCHEMA}
    # Claude Code streams tool_use; the SDK assembles input_json_delta into the input.
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "weather in Oslo"}], tools=[tool]
    ) as stream:
        final = stream.get_final_message()
    use = [b for b in final.content if b.type == "tool_use"]
    assert use and use[0].name == "get_weather" and use[0].input["city"] == "emulated"
    assert final.stop_reason == "tool_use"


def test_ollama_chat_stream_tools_format_embed(profile):
    _, url = profile
    client = ollama.Client(host=url, timeout=30)
    messages = [{"role": "user", "content": "hello"}]
    assert client.chat(model=MODEL, messages=messages).message.content
    assert "".join(p.message.content for p in client.chat(model=MODEL, messages=messages, stream=True))
    tool = {"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": WEATHER_TOOL_SCHEMA}}
    called = client.chat(model=MODEL, messages=[{"role": "user", "content": "weather"}], tools=[tool])
    assert called.message.tool_calls[0].function.name == "get_weather"
    structured = client.chat(model=MODEL, messages=[{"role": "user", "content": "status"}], format=STATUS_SCHEMA)
    assert json.loads(structured.message.content)["count"] == 1
    embedded = client.embed(model=EMBED_MODEL, input=["a", "b"]).embeddings
    assert len(embedded) == 2 and len(embedded[0]) == 64
    assert client.embeddings(model=EMBED_MODEL, prompt="a").embedding == pytest.approx(embedded[0])
    capabilities = client.show(EMBED_MODEL).capabilities
    assert capabilities == ["embedding"]
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model=EMBED_MODEL, messages=messages)
    assert refused.value.status_code == 400
