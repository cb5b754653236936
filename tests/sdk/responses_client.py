"""OpenAI's official SDKs, unchanged, speaking the Responses API to the
gateway: the `openai` client and the OpenAI Agents SDK. One scenario per run,
its result printed as JSON for the Rust test to check.

    responses_client.py BASE_URL MODEL SCENARIO TEST_ID
"""
import asyncio
import json
import sys

import openai

base_url, model, scenario, test_id = sys.argv[1:5]
headers = {"x-test-id": test_id, "x-request-id": test_id}
client = openai.OpenAI(base_url=base_url, api_key="client-key-ignored", max_retries=0, default_headers=headers)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def dump(response):
    return json.loads(response.model_dump_json())


def streamed(**kwargs):
    """A stream read by the SDK's own accumulator: every event's type and
    sequence number, and the final response the SDK assembled."""
    events, last = [], None
    with client.responses.stream(model=model, **kwargs) as stream:
        for event in stream:
            events.append({"type": event.type, "seq": event.sequence_number,
                           "delta": getattr(event, "delta", None) if event.type.endswith(".delta") else None})
            last = getattr(event, "response", last)
        # The accumulator's final response needs `response.completed`; a
        # stream that ends `response.incomplete` carries its own.
        final = stream.get_final_response() if events[-1]["type"] == "response.completed" else last
    return {"events": events, "final": dump(final)}


def tool_round_trip(stream):
    ask = [{"role": "user", "content": "weather in Paris"}]
    first = streamed(input=ask, tools=[WEATHER])["final"] if stream else dump(client.responses.create(model=model, input=ask, tools=[WEATHER]))
    call = next(item for item in first["output"] if item["type"] == "function_call")
    # The conversation goes back whole: the gateway keeps no state.
    follow = ask + first["output"] + [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 21C"}]
    second = streamed(input=follow, tools=[WEATHER])["final"] if stream else dump(client.responses.create(model=model, input=follow, tools=[WEATHER]))
    return {"first": first, "second": second}


def error(call):
    try:
        call()
    except openai.APIStatusError as e:
        return {"status": e.status_code, "class": type(e).__name__, "body": e.body}
    return {"status": 200}


def agent(stream):
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    asked = []

    @function_tool
    def get_weather(q: str) -> str:
        """Weather in a city."""
        asked.append(q)
        return "sunny, 21C"

    async_client = openai.AsyncOpenAI(base_url=base_url, api_key="client-key-ignored", max_retries=0, default_headers=headers)
    weather_agent = Agent(name="weather", instructions="Answer with the tool.", tools=[get_weather],
                          model=OpenAIResponsesModel(model=model, openai_client=async_client))

    async def run():
        if not stream:
            return await Runner.run(weather_agent, "weather in Paris")
        result = Runner.run_streamed(weather_agent, "weather in Paris")
        async for _ in result.stream_events():
            pass
        return result

    result = asyncio.run(run())
    return {"final_output": result.final_output, "tool_asked": asked,
            "items": [item.type for item in result.new_items]}


def run():
    if scenario == "create":
        return dump(client.responses.create(model=model, instructions="Be brief.", input="hello there"))
    if scenario == "stream":
        return streamed(instructions="Be brief.", input=[{"role": "user", "content": "stream this"}])
    if scenario == "tools":
        return tool_round_trip(stream=False)
    if scenario == "tools_stream":
        return tool_round_trip(stream=True)
    if scenario == "image":
        content = [{"type": "input_text", "text": "what is this"},
                   {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"}]
        return dump(client.responses.create(model=model, input=[{"role": "user", "content": content}]))
    if scenario == "max_tokens":
        return dump(client.responses.create(model=model, input="count to twenty please", max_output_tokens=2))
    if scenario == "max_tokens_stream":
        return streamed(input="count to twenty please", max_output_tokens=2)
    if scenario == "json_schema":
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
        return dump(client.responses.create(model=model, input="a city", text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}))
    if scenario == "rate_limited":
        return error(lambda: client.responses.create(model=model, input="x", extra_headers={"x-fake-status": "429"}))
    if scenario == "stored_state":
        return error(lambda: client.responses.create(model=model, input="x", previous_response_id="resp_123"))
    if scenario == "builtin_tool":
        return error(lambda: client.responses.create(model=model, input="x", tools=[{"type": "web_search"}]))
    if scenario == "retrieve":
        return error(lambda: client.responses.retrieve("resp_123"))
    if scenario == "agent":
        return agent(stream=False)
    if scenario == "agent_stream":
        return agent(stream=True)
    raise SystemExit(f"unknown scenario {scenario}")


try:
    print(json.dumps(run()))
except openai.APIStatusError as e:
    print(json.dumps({"status": e.status_code, "class": type(e).__name__, "body": e.body}))
