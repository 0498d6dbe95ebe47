"""The official OpenAI Python SDK against the emulator's /v1 endpoints."""

import json

import openai
import pytest

from conftest import MODEL, WEATHER_TOOL_SCHEMA

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_TOOL_SCHEMA},
}


@pytest.fixture()
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="ollama", max_retries=0, timeout=30)


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["toy:latest"]
    model = client.models.retrieve("toy:latest")
    assert model.id == "toy:latest"
    assert model.owned_by == "library"


def test_chat_completion(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}], max_tokens=32
    )
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_chat_completion_is_deterministic(client):
    ask = lambda: client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "same"}])
    assert ask().choices[0].message.content == ask().choices[0].message.content


def test_streaming_accumulates_to_the_non_streamed_answer(client):
    messages = [{"role": "user", "content": "Stream please"}]
    whole = client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
    stream = client.chat.completions.create(
        model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == whole
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_json_mode_returns_a_json_object(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Return a JSON object with status ok"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_tool_call(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris? Use get_weather."}], tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "emulated", "unit": "celsius"}

    # Send the tool result back: the model answers in text.
    follow_up = client.chat.completions.create(
        model=MODEL,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
        ],
    )
    assert follow_up.choices[0].finish_reason == "stop"
    assert follow_up.choices[0].message.content


def test_streamed_tool_call(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL], stream=True
    )
    calls, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            calls.extend(choice.delta.tool_calls or [])
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather"]


def test_responses_create(client):
    response = client.responses.create(model=MODEL, input="Say hello", max_output_tokens=32)
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text
    assert response.usage.output_tokens > 0


def test_responses_stream(client):
    whole = client.responses.create(model=MODEL, input="Stream it").output_text
    events = list(client.responses.create(model=MODEL, input="Stream it", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == whole
    assert events[-1].response.output_text == whole


def test_responses_stream_helper(client):
    with client.responses.stream(model=MODEL, input="helper") as stream:
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text


def test_responses_tool_call(client):
    tool = {"type": "function", "name": "get_weather", "description": "weather", "parameters": WEATHER_TOOL_SCHEMA}
    response = client.responses.create(model=MODEL, input="weather in Oslo?", tools=[tool])
    call = next(item for item in response.output if item.type == "function_call")
    assert call.name == "get_weather"
    assert json.loads(call.arguments)["city"] == "emulated"


def test_unknown_model_is_a_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="ghost", messages=[{"role": "user", "content": "hi"}])
    assert "not found" in str(caught.value)


def test_responses_absent_before_0_13_3(old_base_url):
    old = openai.OpenAI(base_url=old_base_url + "/v1", api_key="ollama", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        old.responses.create(model=MODEL, input="hi")
