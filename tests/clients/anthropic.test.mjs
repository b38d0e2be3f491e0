// anthropic.test.mjs -- the official `@anthropic-ai/sdk` Node SDK against the
// Anthropic fake: every answer parses, every fault is the SDK's own error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { ANT_URL, ANT_KEY, requestsSeen, rejection, fault } from './lib.mjs';

const client = (opts = {}) =>
  new Anthropic({ apiKey: ANT_KEY(), baseURL: ANT_URL(), timeout: 10000, ...opts });
const REQ = { model: 'claude-test', max_tokens: 256,
  messages: [{ role: 'user', content: 'Say something short.' }] };

test('anthropic: non-streaming message parses, with usage and the fake named', async () => {
  const { data, response } = await client().messages.create(REQ).withResponse();
  assert.equal(response.headers.get('x-slodrill-provider'), 'ant');
  assert.match(response.headers.get('request-id'), /^req_011C/);
  assert.equal(data.type, 'message');
  assert.equal(data.role, 'assistant');
  assert.equal(data.model, 'ant-model');
  assert.equal(data.stop_reason, 'end_turn');
  const text = data.content.map((b) => b.text).join('');
  assert.ok(text.length > 0);
  assert.ok(data.usage.input_tokens > 0);
  assert.equal(data.usage.output_tokens, text.split(' ').length);
  assert.equal(data.usage.cache_read_input_tokens, 0);
});

test('anthropic: raw stream: text equals the concatenated deltas; cumulative usage', async () => {
  const stream = await client().messages.create({ ...REQ, stream: true });
  const types = [];
  let text = '', start = null, delta = null;
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'message_start') start = ev.message;
    if (ev.type === 'content_block_delta') text += ev.delta.text;
    if (ev.type === 'message_delta') delta = ev;
  }
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  // the SDK drops ping events itself; the rest arrive in the documented order
  assert.deepEqual(types.filter((t) => t !== 'content_block_delta'),
    ['message_start', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop']);
  assert.ok(start.usage.input_tokens > 0);
  assert.equal(delta.delta.stop_reason, 'end_turn');
  assert.equal(delta.usage.output_tokens, text.split(' ').length);
});

test('anthropic: stream helper: finalMessage equals the concatenated text events', async () => {
  let deltas = '';
  const s = client().messages.stream(REQ);
  s.on('text', (t) => { deltas += t; });
  const msg = await s.finalMessage();
  assert.equal(msg.content[0].text, deltas);
  assert.ok(deltas.length > 0);
  assert.equal(msg.usage.output_tokens, deltas.split(' ').length);
  assert.ok(msg.usage.input_tokens > 0);
});

test('anthropic: revoke_key is an AuthenticationError, not retried', async () => {
  const before = await requestsSeen(ANT_URL());
  const [e] = await rejection(() => client().messages.create(REQ, fault('revoke_key')));
  assert.ok(e instanceof Anthropic.AuthenticationError, `got ${e.constructor.name}: ${e.message}`);
  assert.equal(e.status, 401);
  assert.equal(e.error.error.type, 'authentication_error');
  assert.match(e.requestID, /^req_011C/);
  assert.equal(await requestsSeen(ANT_URL()) - before, 1);
});

test('anthropic: rate_limit;retry_after=1 is a RateLimitError after the advertised wait', async () => {
  const before = await requestsSeen(ANT_URL());
  const [e, ms] = await rejection(() =>
    client({ maxRetries: 1 }).messages.create(REQ, fault('rate_limit;retry_after=1')));
  assert.ok(e instanceof Anthropic.RateLimitError, `got ${e.constructor.name}: ${e.message}`);
  assert.equal(e.status, 429);
  assert.equal(e.error.error.type, 'rate_limit_error');
  assert.equal(e.headers.get('retry-after'), '1');
  assert.ok(ms >= 950, `SDK gave up after ${ms.toFixed(0)} ms, before the 1 s retry-after`);
  assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  assert.equal(await requestsSeen(ANT_URL()) - before, 2);
});

test('anthropic: overloaded is the SDK\'s 529 error with overloaded_error', async () => {
  const [e] = await rejection(() =>
    client({ maxRetries: 0 }).messages.create(REQ, fault('overloaded')));
  assert.ok(e instanceof Anthropic.APIError, `got ${e.constructor.name}`);
  assert.ok(e instanceof Anthropic.InternalServerError);
  if (Anthropic.OverloadedError) assert.ok(e instanceof Anthropic.OverloadedError);
  assert.equal(e.status, 529);
  assert.equal(e.error.error.type, 'overloaded_error');
  assert.equal(e.error.error.message, 'Overloaded');
});

test('anthropic: overloaded is retried by default: the fake sees 3 attempts', async () => {
  const before = await requestsSeen(ANT_URL());
  await rejection(() => client({ maxRetries: 2 }).messages.create(REQ, fault('overloaded')));
  assert.equal(await requestsSeen(ANT_URL()) - before, 3);
});

for (const mode of ['close', 'reset']) {
  test(`anthropic: cut;mode=${mode} is a stream error, not a short answer`, async () => {
    const stream = await client({ maxRetries: 0 }).messages.create(
      { ...REQ, stream: true }, fault(`cut;after_events=5;mode=${mode}`));
    let text = '';
    await assert.rejects(async () => {
      for await (const ev of stream) if (ev.type === 'content_block_delta') text += ev.delta.text;
    });
    assert.ok(text.length > 0, 'the first deltas arrived before the cut');
  });
}

test('anthropic: error_event inside a 200 stream throws the SDK error with overloaded_error', async () => {
  const stream = await client({ maxRetries: 0 }).messages.create(
    { ...REQ, stream: true }, fault('error_event;after_events=4'));
  await assert.rejects(async () => { for await (const ev of stream) void ev; },
    (e) => e instanceof Anthropic.APIError && /overloaded_error|Overloaded/.test(e.message));
});

test('anthropic: prompt caching: written on first sight, read within the TTL', async () => {
  // 4800 bytes of system prompt = 1200 tokens; the prefix is 1203 with the
  // request's 3. A random word keeps this run's prefix its own.
  const system = [{ type: 'text', text: `${Math.random()} `.padEnd(4800, 'a'),
    cache_control: { type: 'ephemeral' } }];
  const req = { ...REQ, system, messages: [{ role: 'user', content: 'Hello' }] };
  const first = await client().messages.create(req);
  assert.equal(first.usage.cache_creation_input_tokens, 1203);
  assert.equal(first.usage.cache_read_input_tokens, 0);
  assert.equal(first.usage.input_tokens, 5);
  const s = client().messages.stream(req);
  const second = await s.finalMessage();
  assert.equal(second.usage.cache_creation_input_tokens, 0);
  assert.equal(second.usage.cache_read_input_tokens, 1203);
  assert.equal(second.usage.input_tokens, 5);
});
