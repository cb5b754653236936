#!/usr/bin/env python3
"""Drives an A2A agent with the official A2A Python SDK client (a2a-sdk 1.3.0).

Install:  .venv/bin/pip install --quiet "a2a-sdk[http-server]==1.3.0"
          (the client itself needs only the base package: httpx, protobuf).

The SDK client is used unchanged: the card is fetched with
`A2ACardResolver` (GET <base>/.well-known/agent-card.json), the client is
built with `ClientFactory(ClientConfig(supported_protocol_bindings=[<binding>]))`
.create(card) -- the factory picks the card interface for that binding
(preferring protocolVersion 1.0; a 0.3 interface gives the SDK's v0.3
compat transport) and calls the URL that interface advertises.

CLI:
  --base URL            where the card is resolved (e.g. http://127.0.0.1:10000/agents/echo)
  --binding jsonrpc|rest   -> 'JSONRPC' | 'HTTP+JSON'
  --op send|stream|get|cancel|ask|card|extcard
  --text T              message text.  For stream/cancel/ask the agent's
                        prefix ("stream: " / "slow: " / "ask: ") is put in
                        front unless T already starts with a skill prefix.
  --follow-up T         text of the 2nd message of `ask` (default "the answer")
  --protocol-version V  keep only card interfaces with this protocolVersion
                        (e.g. 0.3 to make the SDK use its v0.3 compat transport)
  --card-path P         card path relative to --base (default SDK's)
  --timeout S           per-call timeout (default 30)
  --header K=V          a header on every request (repeatable)
  --skill S             each message names skill S in its metadata ({"skill": S})

Prints ONE JSON line on stdout; on error {"error": "..."} and exit 1.
  send   {"op","binding","url","kind":"task"|"message","task_id","state","text"}
  stream {"op","binding","url","events":[{"kind","state"?,"text"?,"ms"}],
          "first_event_ms","last_event_ms","final_state","text"}
  get    {"op",...,"task_id","send_state","state","text","history_len"}
  cancel {"op",...,"task_id","state_before" (send answer, return_immediately),
          "state_running" (GetTask before cancel),"state" (CancelTask answer),
          "get_state" (GetTask after)}
  ask    {"op",...,"task_id","first_state","first_text","state","text"}
  card   {"op","binding","url","protocol_version","card":{...as resolved...}}
  extcard{"op",...,"card":{...GetExtendedAgentCard answer...}}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

import httpx

from google.protobuf.json_format import MessageToDict

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types import (
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH, TransportProtocol


BINDINGS = {
    'jsonrpc': TransportProtocol.JSONRPC.value,
    'rest': TransportProtocol.HTTP_JSON.value,
}
PREFIXES = ('echo:', 'stream:', 'ask:', 'slow:', 'msg:')


def state_name(state: int) -> str:
    return TaskState.Name(state)


def task_text(task: Task) -> str:
    texts = [get_artifact_text(a) for a in task.artifacts]
    texts = [t for t in texts if t]
    if texts:
        return '\n'.join(texts)
    if task.status.HasField('message'):
        return get_message_text(task.status.message)
    return ''


def with_prefix(text: str, prefix: str) -> str:
    if text.startswith(PREFIXES):
        return text
    return f'{prefix} {text}'


# `--skill S`: every message names the skill it is for in its metadata.
SKILL = ''


def user_message(text: str, task_id: str = '', context_id: str = '') -> Message:
    message = Message(
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        message_id=uuid.uuid4().hex,
        task_id=task_id or None,
        context_id=context_id or None,
    )
    if SKILL:
        message.metadata.update({'skill': SKILL})
    return message


def transport_url(client) -> str:
    t = client._transport  # noqa: SLF001 -- only read, to report it
    while not hasattr(t, 'url') and hasattr(t, '_base'):
        t = t._base  # noqa: SLF001
    return getattr(t, 'url', '')


class Runner:
    def __init__(self, args):
        self.args = args
        self.binding = BINDINGS[args.binding]

    def _factory(self) -> ClientFactory:
        # One httpx client for the card and the calls, as
        # ClientFactory.create_from_url does; ours only to get a timeout
        # longer than httpx's 5 s default.  The factory adds its default
        # `A2A-Version: 1.0` header to it (a v0.3 transport overrides it per
        # request with `a2a-version: 0.3`).
        headers = dict(h.split('=', 1) for h in self.args.header)
        self._http = httpx.AsyncClient(timeout=self.args.timeout, headers=headers)
        return ClientFactory(
            ClientConfig(
                streaming=self.args.op == 'stream',
                supported_protocol_bindings=[self.binding],
                httpx_client=self._http,
            )
        )

    async def resolve(self):
        self.factory = self._factory()
        resolver = A2ACardResolver(
            self._http, self.args.base, agent_card_path=self.args.card_path
        )
        card = await resolver.get_agent_card()
        if self.args.protocol_version:
            keep = [
                i
                for i in card.supported_interfaces
                if i.protocol_version == self.args.protocol_version
            ]
            del card.supported_interfaces[:]
            card.supported_interfaces.extend(keep)
        return card

    def client(self, card, streaming: bool):
        assert streaming == (self.args.op == 'stream')
        return self.factory.create(card)

    def base_out(self, client) -> dict:
        iface = ClientFactory._find_best_interface(  # noqa: SLF001
            list(client._card.supported_interfaces),  # noqa: SLF001
            protocol_bindings=[self.binding],
        )
        return {
            'op': self.args.op,
            'binding': self.binding,
            'url': transport_url(client),
            'protocol_version': iface.protocol_version if iface else '',
            'transport': type(client._transport).__name__,  # noqa: SLF001
        }

    async def send_once(self, client, text, task_id='', context_id='', return_immediately=False):
        req = SendMessageRequest(message=user_message(text, task_id, context_id))
        if return_immediately:
            req.configuration.CopyFrom(
                SendMessageConfiguration(return_immediately=True)
            )
        last = None
        async for resp in client.send_message(req):
            last = resp
        if last is None:
            raise RuntimeError('no response')
        return last

    # ---------------- ops ----------------

    async def op_card(self, card):
        client = self.client(card, streaming=False)
        out = self.base_out(client)
        out['card'] = MessageToDict(card)
        await client.close()
        return out

    async def op_extcard(self, card):
        client = self.client(card, streaming=False)
        out = self.base_out(client)
        ext = await client.get_extended_agent_card(GetExtendedAgentCardRequest())
        out['card'] = MessageToDict(ext)
        await client.close()
        return out

    async def op_send(self, card):
        client = self.client(card, streaming=False)
        out = self.base_out(client)
        resp = await self.send_once(client, self.args.text or 'hello')
        if resp.HasField('task'):
            out.update(
                kind='task',
                task_id=resp.task.id,
                state=state_name(resp.task.status.state),
                text=task_text(resp.task),
            )
        else:
            out.update(
                kind='message',
                task_id=resp.message.task_id,
                state=None,
                text=get_message_text(resp.message),
            )
        await client.close()
        return out

    async def op_stream(self, card):
        client = self.client(card, streaming=True)
        out = self.base_out(client)
        text = with_prefix(self.args.text or 'hello', 'stream:')
        req = SendMessageRequest(message=user_message(text))
        events = []
        chunks = []
        final_state = None
        t0 = time.monotonic()
        async for resp in client.send_message(req):
            ms = round((time.monotonic() - t0) * 1000, 1)
            kind = resp.WhichOneof('payload')
            ev = {'kind': kind, 'ms': ms}
            if kind == 'task':
                ev['state'] = final_state = state_name(resp.task.status.state)
            elif kind == 'status_update':
                ev['state'] = final_state = state_name(
                    resp.status_update.status.state
                )
            elif kind == 'artifact_update':
                ev['text'] = get_artifact_text(resp.artifact_update.artifact)
                chunks.append(ev['text'])
            elif kind == 'message':
                ev['text'] = get_message_text(resp.message)
                chunks.append(ev['text'])
            events.append(ev)
        await client.close()
        out.update(
            events=events,
            first_event_ms=events[0]['ms'] if events else None,
            last_event_ms=events[-1]['ms'] if events else None,
            final_state=final_state,
            text='\n'.join(chunks),
        )
        return out

    async def op_get(self, card):
        client = self.client(card, streaming=False)
        out = self.base_out(client)
        resp = await self.send_once(client, self.args.text or 'hello')
        if not resp.HasField('task'):
            raise RuntimeError('send answered with a message, not a task')
        got = await client.get_task(GetTaskRequest(id=resp.task.id))
        out.update(
            task_id=got.id,
            send_state=state_name(resp.task.status.state),
            state=state_name(got.status.state),
            text=task_text(got),
            history_len=len(got.history),
        )
        await client.close()
        return out

    async def op_cancel(self, card):
        client = self.client(card, streaming=False)
        out = self.base_out(client)
        text = with_prefix(self.args.text or 'hello', 'slow:')
        resp = await self.send_once(client, text, return_immediately=True)
        if not resp.HasField('task'):
            raise RuntimeError('send answered with a message, not a task')
        task_id = resp.task.id
        before = state_name(resp.task.status.state)
        running = before
        for _ in range(40):  # wait (<= 2 s) until the agent reports working
            running = state_name(
                (await client.get_task(GetTaskRequest(id=task_id))).status.state
            )
            if running == 'TASK_STATE_WORKING':
                break
            await asyncio.sleep(0.05)
        canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        got = await client.get_task(GetTaskRequest(id=task_id))
        out.update(
            task_id=task_id,
            state_before=before,
            state_running=running,
            state=state_name(canceled.status.state),
            get_state=state_name(got.status.state),
        )
        await client.close()
        return out

    async def op_ask(self, card):
        client = self.client(card, streaming=False)
        out = self.base_out(client)
        text = with_prefix(self.args.text or 'hello', 'ask:')
        first = await self.send_once(client, text)
        if not first.HasField('task'):
            raise RuntimeError('send answered with a message, not a task')
        t = first.task
        second = await self.send_once(
            client, self.args.follow_up, task_id=t.id, context_id=t.context_id
        )
        if not second.HasField('task'):
            raise RuntimeError('follow-up answered with a message, not a task')
        out.update(
            task_id=t.id,
            first_state=state_name(t.status.state),
            first_text=task_text(t),
            same_task=second.task.id == t.id,
            state=state_name(second.task.status.state),
            text=task_text(second.task),
        )
        await client.close()
        return out

    async def run(self):
        card = await self.resolve()
        try:
            return await getattr(self, f'op_{self.args.op}')(card)
        finally:
            if getattr(self, '_http', None) is not None:
                await self._http.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--base', required=True)
    p.add_argument('--binding', choices=sorted(BINDINGS), default='jsonrpc')
    p.add_argument(
        '--op',
        choices=['send', 'stream', 'get', 'cancel', 'ask', 'card', 'extcard'],
        default='send',
    )
    p.add_argument('--text', default='')
    p.add_argument('--follow-up', default='the answer')
    p.add_argument('--protocol-version', default='')
    p.add_argument('--card-path', default=AGENT_CARD_WELL_KNOWN_PATH)
    p.add_argument('--timeout', type=float, default=30.0)
    p.add_argument('--header', action='append', default=[], help='K=V, sent on every request (repeatable)')
    p.add_argument('--skill', default='', help="names the skill in each message's metadata")
    args = p.parse_args()
    global SKILL
    SKILL = args.skill
    try:
        out = asyncio.run(
            asyncio.wait_for(Runner(args).run(), timeout=args.timeout)
        )
    except BaseException as e:  # noqa: BLE001
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = f'{type(e).__name__}: {e}'
        print(json.dumps({'error': msg}), flush=True)
        sys.exit(1)
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
