#!/usr/bin/env python3
"""A real A2A agent built only from the official A2A Python SDK (a2a-sdk 1.3.0).

Install:  .venv/bin/pip install --quiet "a2a-sdk[http-server]==1.3.0"
          (the `http-server` extra brings starlette + sse-starlette; the
          server is run with uvicorn, which the venv already has -- add
          `uvicorn` to the same pip line on a fresh venv.)

Server pieces are all the SDK's own: an `AgentExecutor` subclass,
`DefaultRequestHandler` (= DefaultRequestHandlerV2), `InMemoryTaskStore`,
`TaskUpdater`, and the SDK's Starlette route builders
`create_agent_card_routes`, `create_jsonrpc_routes`, `create_rest_routes`
(1.x has no A2AStarletteApplication any more; these route factories are the
"app builders").  The only code of ours on the HTTP path is the `--seen`
ASGI middleware, which records requests and then hands them on unchanged.

Layout (SDK defaults):
  GET  /.well-known/agent-card.json        public card (SDK AGENT_CARD_WELL_KNOWN_PATH)
  POST /                                   JSON-RPC 2.0 binding (SDK DEFAULT_RPC_URL)
                                           methods SendMessage, SendStreamingMessage,
                                           GetTask, ListTasks, CancelTask,
                                           SubscribeToTask, GetExtendedAgentCard, ...
  HTTP+JSON (REST) binding, no prefix:
  POST /message:send   POST /message:stream   GET /tasks/{id}
  POST /tasks/{id}:cancel   GET|POST /tasks/{id}:subscribe   GET /tasks
  GET  /extendedAgentCard   (+ the same under /{tenant}/...)
  --jsonrpc-path / --rest-prefix move them (the card follows).

With --v03 the SDK's v0.3 compat layer is switched on as well
(enable_v0_3_compat=True on both route builders):
  JSON-RPC on the same endpoint also accepts message/send, message/stream,
  tasks/get, tasks/cancel, tasks/resubscribe, agent/getAuthenticatedExtendedCard,
  tasks/pushNotificationConfig/*;
  REST adds /v1/message:send, /v1/message:stream, /v1/tasks/{id},
  /v1/tasks/{id}:cancel, /v1/tasks/{id}:subscribe, /v1/card, ...;
  the card gets two more interfaces with protocolVersion "0.3", which makes the
  SDK's card serializer add the legacy top-level fields url /
  preferredTransport / protocolVersion / additionalInterfaces; and the same
  card is also served at the legacy path /.well-known/agent.json.

Behaviour of a message (first match wins):
  1. a skill hint: metadata {"skill": "<id>"} on the message or on the
     SendMessageRequest;
  2. a text prefix: "echo:", "stream:", "ask:", "slow:", "msg:" (the prefix and
     following blanks are stripped from the text the agent echoes);
  3. otherwise `echo`.
  A message that continues a task in input-required (same taskId) is always
  the follow-up of `ask`, whatever its text.

Skills (card skill ids):
  echo   -> Task, artifact "echo: <text>", state completed, all at once
            (status message carries "echo: <text>" as well).
  stream -> Task(submitted), status working, 3 artifact-update chunks of one
            artifact ~300 ms apart ("chunk i/3: <text>", append, last_chunk on
            the 3rd), then status completed (message "echo: <text>").
  ask    -> Task, status input-required (message "need input: <text>"); a
            follow-up message with the same taskId -> working, artifact
            "echo: <follow-up text>", completed.
  slow   -> Task, status working, sleeps --slow-seconds (5 s), then artifact
            "echo: <text>" + completed; CancelTask meanwhile -> canceled.
  msg    -> no task: a single agent Message "echo: <text>".

CLI: --port N  --host 127.0.0.1  --public-url URL (default http://127.0.0.1:N)
     --seen FILE (one JSON line per HTTP request:
                  {"method","path","query","headers":{lowercased},"body":text})
     --v03  --jsonrpc-path /  --rest-prefix ""  --slow-seconds 5
Prints "ready" on stdout once the socket is listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading

import uvicorn

from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette

from a2a.helpers import (
    get_message_text,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import (
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    Role,
    TaskState,
)
from a2a.utils.constants import (
    AGENT_CARD_WELL_KNOWN_PATH,
    DEFAULT_RPC_URL,
    PROTOCOL_VERSION_0_3,
    PROTOCOL_VERSION_1_0,
    TransportProtocol,
)


SKILLS = ('echo', 'stream', 'ask', 'slow', 'msg')
LEGACY_CARD_PATH = '/.well-known/agent.json'


# --------------------------------------------------------------------------
# the agent logic
# --------------------------------------------------------------------------


def choose_skill(context: RequestContext) -> tuple[str, str]:
    """Returns (skill id, text without its prefix)."""
    text = context.get_user_input()
    hint = ''
    msg = context.message
    if msg is not None and msg.HasField('metadata'):
        hint = str(MessageToDict(msg.metadata).get('skill', ''))
    if not hint:
        hint = str(context.metadata.get('skill', ''))
    stripped = text
    for skill in SKILLS:
        prefix = skill + ':'
        if text.startswith(prefix):
            stripped = text[len(prefix):].lstrip()
            if not hint:
                hint = skill
            break
    if hint not in SKILLS:
        hint = 'echo'
    return hint, stripped


class TestAgentExecutor(AgentExecutor):
    """echo / stream / ask / slow / msg behaviours (see module doc)."""

    def __init__(self, slow_seconds: float = 5.0, chunk_delay: float = 0.3):
        self.slow_seconds = slow_seconds
        self.chunk_delay = chunk_delay

    async def execute(
        self, context: RequestContext, event_queue: EventQueue
    ) -> None:
        task = context.current_task
        skill, text = choose_skill(context)

        # follow-up of `ask`: a message on a task waiting for input
        if (
            task is not None
            and task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        ):
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.start_work()
            await updater.add_artifact(
                [new_text_part(f'echo: {context.get_user_input()}')],
                name='answer',
            )
            await updater.complete(
                updater.new_agent_message(
                    [new_text_part(f'echo: {context.get_user_input()}')]
                )
            )
            return

        if skill == 'msg' and task is None:
            await event_queue.enqueue_event(
                new_text_message(
                    f'echo: {text}',
                    context_id=context.context_id,
                    task_id=None,
                    role=Role.ROLE_AGENT,
                )
            )
            return

        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)

        if skill == 'stream':
            await updater.start_work()
            artifact_id = f'{task.id}-stream'
            for i in range(1, 4):
                await asyncio.sleep(self.chunk_delay)
                await updater.add_artifact(
                    [new_text_part(f'chunk {i}/3: {text}')],
                    artifact_id=artifact_id,
                    name='stream',
                    append=i > 1,
                    last_chunk=i == 3,
                )
            await updater.complete(
                updater.new_agent_message([new_text_part(f'echo: {text}')])
            )
        elif skill == 'ask':
            await updater.requires_input(
                updater.new_agent_message(
                    [new_text_part(f'need input: {text}')]
                )
            )
        elif skill == 'slow':
            await updater.start_work(
                updater.new_agent_message([new_text_part('working slowly')])
            )
            # CancelTask cancels this coroutine (asyncio.CancelledError);
            # `cancel()` below writes the canceled state.
            await asyncio.sleep(self.slow_seconds)
            await updater.add_artifact(
                [new_text_part(f'echo: {text}')], name='result'
            )
            await updater.complete()
        else:  # echo
            await updater.add_artifact(
                [new_text_part(f'echo: {text}')], name='echo'
            )
            await updater.complete(
                updater.new_agent_message([new_text_part(f'echo: {text}')])
            )

    async def cancel(
        self, context: RequestContext, event_queue: EventQueue
    ) -> None:
        updater = TaskUpdater(
            event_queue, context.task_id or '', context.context_id or ''
        )
        await updater.cancel(
            updater.new_agent_message([new_text_part('canceled')])
        )


# --------------------------------------------------------------------------
# the card
# --------------------------------------------------------------------------


def _join(base: str, path: str) -> str:
    if not path or path == '/':
        return base
    return base.rstrip('/') + path


def build_card(
    public_url: str,
    jsonrpc_path: str,
    rest_prefix: str,
    v03: bool,
    extended: bool = False,
) -> AgentCard:
    jsonrpc_url = _join(public_url, jsonrpc_path)
    rest_url = _join(public_url, rest_prefix)
    interfaces = [
        AgentInterface(
            url=jsonrpc_url,
            protocol_binding=TransportProtocol.JSONRPC.value,
            protocol_version=PROTOCOL_VERSION_1_0,
        ),
        AgentInterface(
            url=rest_url,
            protocol_binding=TransportProtocol.HTTP_JSON.value,
            protocol_version=PROTOCOL_VERSION_1_0,
        ),
    ]
    if v03:
        interfaces += [
            AgentInterface(
                url=jsonrpc_url,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_0_3,
            ),
            AgentInterface(
                url=rest_url,
                protocol_binding=TransportProtocol.HTTP_JSON.value,
                protocol_version=PROTOCOL_VERSION_0_3,
            ),
        ]
    skills = [
        AgentSkill(
            id='echo',
            name='Echo',
            description='Answers at once with a completed task: "echo: <text>".',
            tags=['echo', 'test'],
            examples=['hello', 'echo: hello'],
        ),
        AgentSkill(
            id='stream',
            name='Stream',
            description='working, 3 artifact chunks ~300 ms apart, completed.',
            tags=['stream', 'test'],
            examples=['stream: hello'],
        ),
        AgentSkill(
            id='ask',
            name='Ask',
            description='Goes to input-required; a follow-up in the same task completes it.',
            tags=['multi-turn', 'test'],
            examples=['ask: what?'],
        ),
        AgentSkill(
            id='slow',
            name='Slow',
            description='Stays working ~5 s; CancelTask moves it to canceled.',
            tags=['cancel', 'test'],
            examples=['slow: hello'],
        ),
        AgentSkill(
            id='msg',
            name='Message',
            description='Replies with a single Message (no task): "echo: <text>".',
            tags=['message', 'test'],
            examples=['msg: hello'],
        ),
    ]
    if extended:
        skills.append(
            AgentSkill(
                id='secret',
                name='Extended-only skill',
                description='Listed only in the authenticated extended card.',
                tags=['extended'],
            )
        )
    return AgentCard(
        name='sdk-test-agent' + (' (extended)' if extended else ''),
        description='A2A SDK 1.3.0 test agent: echo, stream, ask, slow, msg.',
        version='1.0.0',
        provider=AgentProvider(
            organization='gateway-tests', url='http://127.0.0.1/'
        ),
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(
            streaming=True,
            push_notifications=False,
            extended_agent_card=True,
        ),
        default_input_modes=['text/plain'],
        default_output_modes=['text/plain'],
        skills=skills,
    )


# --------------------------------------------------------------------------
# --seen middleware
# --------------------------------------------------------------------------


class SeenMiddleware:
    """Appends one JSON line per HTTP request, then passes it on unchanged."""

    def __init__(self, app, path: str):
        self.app = app
        self.path = path
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        first_disconnect = None
        while True:
            msg = await receive()
            if msg['type'] == 'http.request':
                chunks.append(msg.get('body', b''))
                if not msg.get('more_body', False):
                    break
            else:  # http.disconnect before the body was complete
                first_disconnect = msg
                break
        body = b''.join(chunks)
        headers: dict[str, str] = {}
        for k, v in scope.get('headers', []):
            key = k.decode('latin-1').lower()
            val = v.decode('latin-1')
            headers[key] = f'{headers[key]}, {val}' if key in headers else val
        record = {
            'method': scope.get('method'),
            'path': scope.get('path'),
            'query': scope.get('query_string', b'').decode('latin-1'),
            'headers': headers,
            'body': body.decode('utf-8', 'replace'),
        }
        with self.lock, open(self.path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(record) + '\n')
            f.flush()

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                if first_disconnect is not None:
                    return first_disconnect
                return {'type': 'http.request', 'body': body, 'more_body': False}
            return await receive()

        await self.app(scope, replay, send)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def build_app(args) -> tuple[Starlette, DefaultRequestHandler]:
    public_url = args.public_url or f'http://127.0.0.1:{args.port}'
    card = build_card(public_url, args.jsonrpc_path, args.rest_prefix, args.v03)
    extended_card = build_card(
        public_url, args.jsonrpc_path, args.rest_prefix, args.v03, extended=True
    )
    handler = DefaultRequestHandler(
        agent_executor=TestAgentExecutor(slow_seconds=args.slow_seconds),
        task_store=InMemoryTaskStore(),
        agent_card=card,
        extended_agent_card=extended_card,
    )
    routes = []
    routes.extend(create_agent_card_routes(card, card_url=AGENT_CARD_WELL_KNOWN_PATH))
    if args.v03:
        routes.extend(create_agent_card_routes(card, card_url=LEGACY_CARD_PATH))
    routes.extend(
        create_jsonrpc_routes(
            handler, rpc_url=args.jsonrpc_path, enable_v0_3_compat=args.v03
        )
    )
    # REST last: it ends with a catch-all Mount('/{tenant}', ...).
    routes.extend(
        create_rest_routes(
            handler, enable_v0_3_compat=args.v03, path_prefix=args.rest_prefix
        )
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        await handler.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    return app, handler


async def serve(args) -> None:
    app, _ = build_app(args)
    asgi = SeenMiddleware(app, args.seen) if args.seen else app
    config = uvicorn.Config(
        asgi,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan='on',
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # re-raise the startup error
            raise SystemExit('server stopped before it started')
        await asyncio.sleep(0.02)
    print('ready', flush=True)
    await task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('port_arg', nargs='?', type=int, help='the port (or --port)')
    p.add_argument('--port', type=int, default=None)
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--public-url', default=None)
    p.add_argument('--seen', default=None)
    p.add_argument('--v03', action='store_true')
    p.add_argument('--jsonrpc-path', default=DEFAULT_RPC_URL)
    p.add_argument('--rest-prefix', default='')
    p.add_argument('--slow-seconds', type=float, default=5.0)
    p.add_argument('--log-level', default='warning')
    args = p.parse_args()
    args.port = args.port or args.port_arg
    if not args.port:
        p.error('a port is needed')
    if not args.jsonrpc_path.startswith('/'):
        p.error('--jsonrpc-path must start with /')
    if args.rest_prefix and not args.rest_prefix.startswith('/'):
        p.error('--rest-prefix must start with /')
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == '__main__':
    main()
