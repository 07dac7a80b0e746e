// Hands packed records to Kinesis with PutRecords, retrying only the entries that failed, with
// jittered exponential backoff, until a deadline. There is no durable queue on Lambda@Edge: if
// the records cannot be written in time, the caller answers 503 and the tracker retries.
'use strict';

const { setTimeout: sleepFor } = require('node:timers/promises');
const { PutRecordsCommand } = require('@aws-sdk/client-kinesis');

/** PutRecords takes at most 500 records and 5 MiB (data and partition keys) per call. */
const MAX_CALL_RECORDS = 500;
const MAX_CALL_BYTES = 5 * 1024 * 1024;

/** Errors that another try cannot fix: answer at once instead of waiting for the deadline. */
const PERMANENT = new Set([
  'AccessDeniedException',
  'InvalidArgumentException',
  'KMSAccessDeniedException',
  'KMSDisabledException',
  'KMSNotFoundException',
  'ResourceNotFoundException',
  'ValidationException',
]);

function calls(entries) {
  const out = [];
  let call = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entry.Data.length + Buffer.byteLength(entry.PartitionKey);
    if (call.length === MAX_CALL_RECORDS || (call.length > 0 && bytes + size > MAX_CALL_BYTES)) {
      out.push(call);
      call = [];
      bytes = 0;
    }
    call.push(entry);
    bytes += size;
  }
  if (call.length > 0) out.push(call);
  return out;
}

/** One PutRecords call: the entries that failed, and the error if the whole call did. */
async function putCall(client, stream, entries, signal) {
  try {
    const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }), { abortSignal: signal });
    const results = out.Records || [];
    return { failed: entries.filter((_, i) => !results[i] || results[i].ErrorCode), error: null };
  } catch (error) {
    return { failed: entries, error };
  }
}

/**
 * Writes `records` (`{ partitionKey, data }`) to `stream`. Returns `{ ok, attempts, error }`;
 * `ok` is true once every record was accepted by Kinesis.
 * Options: `deadlineAt` (epoch ms), `signal` (aborts calls in flight at the deadline), and for
 * tests `now`, `random`, `baseDelayMs`, `maxDelayMs`.
 */
async function putAll(client, stream, records, options) {
  const { deadlineAt, signal, now = Date.now, random = Math.random, baseDelayMs = 25, maxDelayMs = 400 } = options;
  let pending = records.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data }));
  for (let attempt = 1; ; attempt += 1) {
    const failed = [];
    let error = null;
    for (const call of calls(pending)) {
      const result = await putCall(client, stream, call, signal);
      failed.push(...result.failed);
      error = result.error || error;
    }
    if (failed.length === 0) return { ok: true, attempts: attempt, error: null };
    if (error && PERMANENT.has(error.name)) return { ok: false, attempts: attempt, error };
    // Full jitter: a random wait up to the exponential step, so retrying edges do not align.
    const wait = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    if (signal.aborted || now() + wait >= deadlineAt) {
      return { ok: false, attempts: attempt, error: error || new Error(`${failed.length} records refused`) };
    }
    try {
      await sleepFor(wait, undefined, { signal });
    } catch {
      return { ok: false, attempts: attempt, error: new Error('deadline reached') };
    }
    pending = failed;
  }
}

module.exports = { putAll, MAX_CALL_RECORDS, MAX_CALL_BYTES };
