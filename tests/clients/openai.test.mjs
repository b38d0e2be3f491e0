// openai.test.mjs -- the official `openai` Node SDK against the OpenAI fake:
// every answer parses, and every fault surfaces as the SDK's own error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { OAI_URL, OAI_KEY, requestsSeen, rejection, fault } from './lib.mjs';

const client = (opts = {}) =>
  new OpenAI({ apiKey: OAI_KEY(), baseURL: `${OAI_URL()}/v1`, timeout: 10000, ...opts });
const MSG = [{ role: 'user', content: 'Say something short.' }];

test('openai: non-streaming answer parses, with usage and the fake named', async () => {
  const { data, response } = await client()
    .chat.completions.create({ model: 'gpt-test', messages: MSG })
    .withResponse();
  assert.equal(response.headers.get('x-slodrill-provider'), 'oai');
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'oai-model');
  assert.match(data.id, /^chatcmpl-oai-/);
  const text = data.choices[0].message.content;
  assert.ok(text.length > 0);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.ok(data.usage.prompt_tokens > 0);
  assert.equal(data.usage.completion_tokens, text.split(' ').length);
  assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
});

test('openai: max_tokens caps the answer: finish_reason length', async () => {
  const r = await client().chat.completions.create({ model: 'm', messages: MSG, max_tokens: 2 });
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 2);
});

test('openai: stream: text equals the concatenated deltas; usage chunk with include_usage', async () => {
  const stream = await client().chat.completions.create({
    model: 'gpt-test', messages: MSG, stream: true, stream_options: { include_usage: true },
  });
  let text = '', role = null, finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    if (c.choices.length === 0) continue;
    const d = c.choices[0].delta;
    if (d.role) role = d.role;
    if (d.content) text += d.content;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(finish, 'stop');
  assert.ok(text.length > 0);
  assert.ok(usage, 'usage chunk present');
  assert.equal(usage.completion_tokens, text.split(' ').length);
  assert.ok(usage.prompt_tokens > 0);
  assert.equal(chunks, usage.completion_tokens + 3); // role + tokens + finish + usage
});

test('openai: stream helper: the accumulated message equals the concatenated deltas', async () => {
  let deltas = '';
  const s = client().chat.completions.stream({
    model: 'gpt-test', messages: MSG, stream_options: { include_usage: true },
  });
  s.on('content', (delta) => { deltas += delta; });
  const final = await s.finalChatCompletion();
  assert.equal(final.choices[0].message.content, deltas);
  assert.ok(deltas.length > 0);
  assert.equal(final.usage.completion_tokens, deltas.split(' ').length);
});

test('openai: revoke_key is an AuthenticationError, not retried', async () => {
  const before = await requestsSeen(OAI_URL());
  const [e] = await rejection(() =>
    client().chat.completions.create({ model: 'm', messages: MSG }, fault('revoke_key')));
  assert.ok(e instanceof OpenAI.AuthenticationError, `got ${e.constructor.name}: ${e.message}`);
  assert.equal(e.status, 401);
  assert.equal(e.code, 'invalid_api_key');
  assert.match(e.message, /Incorrect API key provided: sk-test-\*+6789\./);
  assert.equal(await requestsSeen(OAI_URL()) - before, 1);
});

test('openai: rate_limit;retry_after=1 is a RateLimitError after the advertised wait', async () => {
  const before = await requestsSeen(OAI_URL());
  const [e, ms] = await rejection(() =>
    client({ maxRetries: 1 }).chat.completions.create(
      { model: 'm', messages: MSG }, fault('rate_limit;retry_after=1')));
  assert.ok(e instanceof OpenAI.RateLimitError, `got ${e.constructor.name}: ${e.message}`);
  assert.equal(e.status, 429);
  assert.equal(e.code, 'rate_limit_exceeded');
  assert.equal(e.headers.get('retry-after'), '1');
  assert.ok(ms >= 950, `SDK gave up after ${ms.toFixed(0)} ms, before the 1 s retry-after`);
  assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  assert.equal(await requestsSeen(OAI_URL()) - before, 2);
});

test('openai: insufficient_quota is a RateLimitError with its own code', async () => {
  const [e] = await rejection(() =>
    client({ maxRetries: 0 }).chat.completions.create(
      { model: 'm', messages: MSG }, fault('rate_limit;mode=quota')));
  assert.ok(e instanceof OpenAI.RateLimitError);
  assert.equal(e.code, 'insufficient_quota');
  assert.equal(e.type, 'insufficient_quota');
});

test('openai: http_error;status=503 is an InternalServerError with server_is_overloaded', async () => {
  const [e] = await rejection(() =>
    client({ maxRetries: 0 }).chat.completions.create(
      { model: 'm', messages: MSG }, fault('http_error;status=503')));
  assert.ok(e instanceof OpenAI.InternalServerError, `got ${e.constructor.name}`);
  assert.equal(e.status, 503);
  assert.equal(e.code, 'server_is_overloaded');
});

for (const mode of ['close', 'reset']) {
  test(`openai: cut;mode=${mode} is a stream error, not a short answer`, async () => {
    const stream = await client({ maxRetries: 0 }).chat.completions.create(
      { model: 'm', messages: MSG, stream: true }, fault(`cut;after_events=3;mode=${mode}`));
    let text = '';
    await assert.rejects(async () => {
      for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    });
    assert.ok(text.length > 0, 'the first events arrived before the cut');
  });
}

test('openai: error_event inside a 200 stream throws an APIError', async () => {
  const stream = await client({ maxRetries: 0 }).chat.completions.create(
    { model: 'm', messages: MSG, stream: true }, fault('error_event;after_events=2;status=500'));
  await assert.rejects(async () => { for await (const c of stream) void c; },
    (e) => e instanceof OpenAI.APIError && /server had an error/.test(e.message));
});
