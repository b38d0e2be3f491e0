// lib.mjs -- what the SDK tests share: the fakes' URLs and keys from the
// environment (set by tests/e2e_sdk.sh), and the fakes' request counters
// read through their control API.
import assert from 'node:assert/strict';

export function env(name) {
  const v = process.env[name];
  assert.ok(v, `${name} is not set: run these tests through tests/e2e_sdk.sh`);
  return v;
}

export const OAI_URL = () => env('SLODRILL_OAI_URL');
export const OAI_KEY = () => env('SLODRILL_OAI_KEY');
export const ANT_URL = () => env('SLODRILL_ANT_URL');
export const ANT_KEY = () => env('SLODRILL_ANT_KEY');

// API requests the fake at root url has received so far.
export async function requestsSeen(url) {
  const r = await fetch(`${url}/_chaos/faults`);
  assert.equal(r.status, 200);
  const j = await r.json();
  return j.stats.requests;
}

// Milliseconds spent in fn; its promise must reject. Returns [error, ms].
export async function rejection(fn) {
  const t0 = performance.now();
  try {
    await fn();
  } catch (e) {
    return [e, performance.now() - t0];
  }
  assert.fail('expected the call to throw');
}

export const fault = (spec) => ({ headers: { 'x-slodrill-fault': spec } });
