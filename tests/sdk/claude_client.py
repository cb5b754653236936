"""The official `anthropic` SDK, unchanged, pointed at the gateway: one
scenario per run, its result printed as JSON for the Rust test to check.

    claude_client.py BASE_URL MODEL SCENARIO TEST_ID
"""
import json
import sys

import anthropic

base_url, model, scenario, test_id = sys.argv[1:5]
client = anthropic.Anthropic(base_url=base_url, api_key="client-key-ignored", max_retries=0,
                             default_headers={"x-test-id": test_id, "x-request-id": test_id})
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def dump(message):
    return json.loads(message.model_dump_json())


def run():
    if scenario == "chat":
        return dump(client.messages.create(model=model, max_tokens=200, messages=[{"role": "user", "content": "hello there"}]))
    if scenario == "system":
        return dump(client.messages.create(model=model, max_tokens=200, system="Answer in one line.",
                                           messages=[{"role": "user", "content": "hi"}]))
    if scenario == "image":
        content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                   {"type": "text", "text": "what is this"}]
        return dump(client.messages.create(model=model, max_tokens=200, messages=[{"role": "user", "content": content}]))
    if scenario == "max_tokens":
        return dump(client.messages.create(model=model, max_tokens=2, messages=[{"role": "user", "content": "one two three four five"}]))
    if scenario in ("tools", "tools_stream"):
        ask = [{"role": "user", "content": "weather in Paris"}]
        if scenario == "tools":
            first = client.messages.create(model=model, max_tokens=200, tools=[WEATHER], tool_choice={"type": "any"}, messages=ask)
        else:
            with client.messages.stream(model=model, max_tokens=200, tools=[WEATHER], messages=ask) as s:
                first = s.get_final_message()
        use = next(b for b in first.content if b.type == "tool_use")
        follow = ask + [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees"}]}]
        second = client.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=follow)
        return {"first": dump(first), "second": dump(second)}
    if scenario == "stream":
        with client.messages.stream(model=model, max_tokens=200, messages=[{"role": "user", "content": "stream please"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        return {"text": text, "final": dump(final)}
    if scenario == "bad":
        try:
            client.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": [{"type": "unknown_block", "x": 1}]}])
        except anthropic.APIStatusError as e:
            return {"status": e.status_code, "body": e.body}
        return {"status": 200}
    raise SystemExit(f"unknown scenario {scenario}")


print(json.dumps(run()))
