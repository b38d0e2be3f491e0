// router.test.mjs -- the official `openai` Node SDK (6.x) through `slodrill router`:
// plain and streamed answers parse, both provider dialects serve, a revoked
// key fails over without the SDK noticing, and the router's errors surface
// as the SDK's own error classes. Run by tests/e2e_router_sdk.sh, which
// starts the fakes and the router and sets the environment read here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

function env(name) {
  const v = process.env[name];
  assert.ok(v, `${name} is not set: run through tests/e2e_router_sdk.sh`);
  return v;
}

const ROUTER = () => env('SLODRILL_ROUTER_URL');
const MASTER = () => env('SLODRILL_ROUTER_KEY');
const OAI = () => env('SLODRILL_OAI_URL');
const client = (opts = {}) =>
  new OpenAI({ apiKey: MASTER(), baseURL: `${ROUTER()}/v1`, timeout: 10000, maxRetries: 0, ...opts });
const MSG = [{ role: 'user', content: 'Say something short.' }];

// Adds a fault on a fake through its control API; returns a function that clears it.
async function fault(url, spec) {
  const r = await fetch(`${url}/_chaos/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ spec }),
  });
  assert.equal(r.status, 200, `adding ${spec}: ${await r.text()}`);
  return async () => {
    const d = await fetch(`${url}/_chaos/faults`, { method: 'DELETE' });
    assert.equal(d.status, 200);
  };
}

async function clearCooldowns() {
  const r = await fetch(`${ROUTER()}/admin/cooldowns/clear`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MASTER()}` },
  });
  assert.equal(r.status, 200);
}

// Collects a stream: text, role, finish reason, usage, chunk count, and
// when the first and last content arrived (ms since the call).
async function collect(stream, t0) {
  const out = { text: '', role: null, finish: null, usage: null, chunks: 0, content: 0, first: -1, last: -1 };
  for await (const c of stream) {
    out.chunks++;
    if (c.usage) out.usage = c.usage;
    if (c.choices.length === 0) continue;
    const d = c.choices[0].delta;
    if (d.role) out.role = d.role;
    if (d.content) {
      out.text += d.content;
      out.content++;
      const now = performance.now() - t0;
      if (out.first < 0) out.first = now;
      out.last = now;
    }
    if (c.choices[0].finish_reason) out.finish = c.choices[0].finish_reason;
  }
  return out;
}

test('router: plain answer from the OpenAI primary, with who served and what it cost', async () => {
  const { data, response } = await client()
    .chat.completions.create({ model: 'app/chat', messages: MSG })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-slodrill-deployment'), 'primary');
  assert.equal(response.headers.get('x-slodrill-provider'), 'oai');
  assert.equal(response.headers.get('x-slodrill-attempts'), '1');
  assert.match(response.headers.get('x-slodrill-request-id'), /^sdr-/);
  assert.ok(Number(response.headers.get('x-slodrill-cost-usd')) > 0);
  assert.equal(data.object, 'chat.completion');
  assert.ok(data.choices[0].message.content.length > 0);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
});

test('router: stream from the primary: deltas add up, no usage chunk unless asked', async () => {
  const t0 = performance.now();
  const { data: stream, response } = await client()
    .chat.completions.create({ model: 'app/chat', messages: MSG, stream: true })
    .withResponse();
  assert.equal(response.headers.get('x-slodrill-deployment'), 'primary');
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  const s = await collect(stream, t0);
  assert.equal(s.role, 'assistant');
  assert.equal(s.finish, 'stop');
  assert.ok(s.content >= 2, `content chunks: ${s.content}`);
  assert.equal(s.usage, null, 'the client did not ask for usage');
});

test('router: stream with include_usage: the usage chunk carries the price', async () => {
  const stream = await client().chat.completions.create({
    model: 'app/chat', messages: MSG, stream: true, stream_options: { include_usage: true },
  });
  const s = await collect(stream, performance.now());
  assert.ok(s.usage, 'usage chunk present');
  assert.equal(s.usage.completion_tokens, s.content);
  const want = s.usage.prompt_tokens * 0.00000015 + s.usage.completion_tokens * 0.0000006;
  assert.ok(Math.abs(s.usage.cost - want) < 1e-12, `cost ${s.usage.cost}, want ${want}`);
});

test('router: the SDK stream helper accumulates the same text', async () => {
  let deltas = '';
  const s = client().chat.completions.stream({ model: 'app/chat', messages: MSG });
  s.on('content', (d) => { deltas += d; });
  const done = await s.finalChatCompletion();
  assert.equal(done.choices[0].message.content, deltas);
  assert.ok(deltas.length > 0);
});

test('router: an Anthropic deployment answers in OpenAI format, plain and streamed', async () => {
  const { data, response } = await client()
    .chat.completions.create({ model: 'app/claude', messages: MSG, max_tokens: 64 })
    .withResponse();
  assert.equal(response.headers.get('x-slodrill-deployment'), 'claude');
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.ok(data.choices[0].message.content.length > 0);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0);

  const stream = await client().chat.completions.create({
    model: 'app/claude', messages: MSG, stream: true, stream_options: { include_usage: true },
  });
  const s = await collect(stream, performance.now());
  assert.equal(s.role, 'assistant');
  assert.equal(s.finish, 'stop');
  assert.ok(s.text.length > 0);
  assert.ok(s.usage && s.usage.completion_tokens > 0);
});

test('router: a revoked primary key fails over to the Anthropic secondary, invisibly', async () => {
  await clearCooldowns();
  const clear = await fault(OAI(), 'revoke_key');
  try {
    const { data, response } = await client()
      .chat.completions.create({ model: 'app/chat', messages: MSG })
      .withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-slodrill-deployment'), 'secondary');
    assert.equal(response.headers.get('x-slodrill-attempts'), '2');
    assert.equal(response.headers.get('x-slodrill-failover-hops'), '1');
    assert.ok(data.choices[0].message.content.length > 0);

    // The primary is cooling now: a stream goes straight to the secondary.
    const t0 = performance.now();
    const { data: stream, response: r2 } = await client()
      .chat.completions.create({ model: 'app/chat', messages: MSG, stream: true })
      .withResponse();
    assert.equal(r2.headers.get('x-slodrill-deployment'), 'secondary');
    const s = await collect(stream, t0);
    assert.equal(s.finish, 'stop');
    assert.ok(s.text.length > 0);
  } finally {
    await clear();
    await clearCooldowns();
  }
});

test('router: when every deployment fails the SDK sees a 503 APIError naming them', async () => {
  await clearCooldowns();
  const c1 = await fault(OAI(), 'http_error;status=503');
  const c2 = await fault(env('SLODRILL_ANT_URL'), 'http_error;status=503');
  try {
    await assert.rejects(
      client().chat.completions.create({ model: 'app/chat', messages: MSG }),
      (e) => {
        assert.ok(e instanceof OpenAI.APIError);
        assert.equal(e.status, 503);
        assert.match(e.message, /no deployment of 'app\/chat' could answer/);
        return true;
      },
    );
  } finally {
    await c1();
    await c2();
    await clearCooldowns();
  }
});

test('router: unknown alias is NotFoundError; a wrong key is AuthenticationError', async () => {
  await assert.rejects(
    client().chat.completions.create({ model: 'no/such', messages: MSG }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
  await assert.rejects(
    client({ apiKey: 'sk-wrong' }).chat.completions.create({ model: 'app/chat', messages: MSG }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );
});

test('router: models.list names every alias', async () => {
  const ids = [];
  for await (const m of client().models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['app/chat', 'app/claude', 'app/slow']);
});

test('router: a slow provider streams through chunk by chunk, not at the end', async () => {
  const t0 = performance.now();
  const stream = await client().chat.completions.create({ model: 'app/slow', messages: MSG, stream: true });
  const s = await collect(stream, t0);
  assert.ok(s.content >= 10, `content chunks: ${s.content}`);
  // 25 tokens/s: the last token comes several hundred ms after the first.
  assert.ok(s.last - s.first > 250, `first ${s.first.toFixed(0)} ms, last ${s.last.toFixed(0)} ms`);
});

// Tools through the Anthropic deployment: the router turns OpenAI tools into
// Anthropic's, and the fake's tool_use back into tool_calls.
const TOOLS = [{
  type: 'function',
  function: {
    name: 'search_docs',
    description: 'Search the product docs',
    parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
  },
}];
const ASK = [{ role: 'user', content: 'Find the refund policy' }];

test('router: tools to an Anthropic deployment come back as tool_calls', async () => {
  const { data, response } = await client()
    .chat.completions.create({ model: 'app/claude', messages: ASK, tools: TOOLS, tool_choice: 'auto' })
    .withResponse();
  assert.equal(response.headers.get('x-slodrill-deployment'), 'claude');
  assert.equal(data.choices[0].finish_reason, 'tool_calls');
  const m = data.choices[0].message;
  assert.equal(m.content, null);
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].type, 'function');
  assert.match(m.tool_calls[0].id, /^toolu_/);
  assert.equal(m.tool_calls[0].function.name, 'search_docs');
  assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { query: 'Find the refund policy' });
});

test('router: a streamed tool call assembles in the SDK stream helper', async () => {
  const fragments = [];
  let done = null;
  const s = client().chat.completions.stream({ model: 'app/claude', messages: ASK, tools: TOOLS });
  s.on('tool_calls.function.arguments.delta', (e) => fragments.push(e.arguments_delta));
  s.on('tool_calls.function.arguments.done', (e) => { done = e; });
  const final = await s.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  const tc = final.choices[0].message.tool_calls;
  assert.equal(tc.length, 1);
  assert.match(tc[0].id, /^toolu_/);
  assert.equal(tc[0].function.name, 'search_docs');
  assert.deepEqual(JSON.parse(tc[0].function.arguments), { query: 'Find the refund policy' });
  // the arguments arrived in pieces that join to the whole
  assert.ok(fragments.filter((f) => f.length > 0).length >= 2, `fragments: ${JSON.stringify(fragments)}`);
  assert.equal(fragments.join(''), tc[0].function.arguments);
  assert.equal(done?.name, 'search_docs');
});

test('router: the tool call and its role "tool" result get a text answer', async () => {
  const first = await client().chat.completions.create({ model: 'app/claude', messages: ASK, tools: TOOLS });
  const call = first.choices[0].message;
  assert.equal(call.tool_calls.length, 1);
  const second = await client().chat.completions.create({
    model: 'app/claude',
    tools: TOOLS,
    messages: [
      ...ASK,
      call, // the assistant message as the SDK returned it
      { role: 'tool', tool_call_id: call.tool_calls[0].id, content: 'Refunds within 30 days.' },
    ],
  });
  assert.equal(second.choices[0].finish_reason, 'stop');
  assert.ok(second.choices[0].message.content.length > 0);
  assert.equal(second.choices[0].message.tool_calls, undefined);
});
