"""Third-party libraries people use with Ollama, against every version profile: LangChain's
ollama and openai integrations and LiteLLM. Chat, stream, tools, structured output and
embeddings. conftest.py refuses (and fails the test on) any connection outside loopback;
the options below are what keeps these libraries from making one."""

import json

# conftest.py sets LITELLM_LOCAL_MODEL_COST_MAP before this import runs.
import langchain_ollama
import langchain_openai
import litellm

from conftest import EMBED_MODEL, MODEL, WEATHER_TOOL_SCHEMA

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_TOOL_SCHEMA},
}
STATUS_SCHEMA = {
    "title": "Status",
    "description": "Server status",
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok"]}, "count": {"type": "integer"}},
    "required": ["status", "count"],
}


def _exercise_chat_model(chat):
    assert chat.invoke("hello").content
    assert "".join(chunk.content for chunk in chat.stream("hello"))
    called = chat.bind_tools([WEATHER_TOOL]).invoke("weather in Oslo")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather"
    structured = chat.with_structured_output(STATUS_SCHEMA, method="json_schema").invoke("status")
    assert structured["status"] == "ok"


def test_langchain_ollama(profile):
    _, url = profile
    _exercise_chat_model(langchain_ollama.ChatOllama(model=MODEL, base_url=url))
    vectors = langchain_ollama.OllamaEmbeddings(model=EMBED_MODEL, base_url=url).embed_documents(["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == 64


def test_langchain_openai(profile):
    _, url = profile
    chat = langchain_openai.ChatOpenAI(model=MODEL, base_url=url + "/v1", api_key="ollama", max_retries=0, timeout=30)
    _exercise_chat_model(chat)
    # Without these two, the embeddings download tiktoken's encodings from the internet.
    embeddings = langchain_openai.OpenAIEmbeddings(
        model=EMBED_MODEL,
        base_url=url + "/v1",
        api_key="ollama",
        max_retries=0,
        tiktoken_enabled=False,
        check_embedding_ctx_length=False,
    )
    vectors = embeddings.embed_documents(["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == 64


def test_litellm_native_and_openai_routes(profile):
    _, url = profile
    messages = [{"role": "user", "content": "hello"}]
    for model, base in [(f"ollama_chat/{MODEL}", url), (f"openai/{MODEL}", url + "/v1")]:
        kwargs = {"model": model, "api_base": base, "api_key": "ollama", "timeout": 30}
        assert litellm.completion(messages=messages, **kwargs).choices[0].message.content
        text = "".join(c.choices[0].delta.content or "" for c in litellm.completion(messages=messages, stream=True, **kwargs))
        assert text, model
        called = litellm.completion(messages=[{"role": "user", "content": "weather in Oslo"}], tools=[WEATHER_TOOL], **kwargs)
        assert called.choices[0].message.tool_calls[0].function.name == "get_weather", model
        structured = litellm.completion(
            messages=[{"role": "user", "content": "status"}],
            response_format={"type": "json_schema", "json_schema": {"name": "status", "schema": STATUS_SCHEMA}},
            **kwargs,
        )
        assert json.loads(structured.choices[0].message.content)["status"] == "ok", model
    for model, base in [(f"ollama/{EMBED_MODEL}", url), (f"openai/{EMBED_MODEL}", url + "/v1")]:
        embedded = litellm.embedding(model=model, api_base=base, api_key="ollama", input=["a", "b"], timeout=30)
        assert len(embedded.data) == 2 and len(embedded.data[0]["embedding"]) == 64, model
