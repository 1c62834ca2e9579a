// The pipeline's iteration rules, with scripted filters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Direction, type DirectionStep } from '../../src/pipeline/direction.ts';
import { type BodyBuffer, DataStatus, HeadersStatus } from '../../src/pipeline/filter.ts';
import { HeaderMap } from '../../src/pipeline/headers.ts';

interface Script {
  headers?: number;
  data?: (body: BodyBuffer, end: boolean) => number;
}

function setup(scripts: Script[], limit = 1024) {
  const trace: string[] = [];
  const out: { headers: boolean; data: string[]; end: boolean; overLimit: boolean } = {
    headers: false,
    data: [],
    end: false,
    overLimit: false,
  };
  const steps: DirectionStep[] = scripts.map((s, i) => ({
    headers: () => {
      trace.push(`h${i}`);
      return (s.headers ?? HeadersStatus.Continue) as 0 | 1;
    },
    data: (b, end) => {
      trace.push(`d${i}:${Buffer.from(b.bytes()).toString()}${end ? '$' : ''}`);
      return (s.data ? s.data(b, end) : DataStatus.Continue) as 0 | 1;
    },
    trailers: () => HeadersStatus.Continue,
  }));
  const dir = new Direction(
    steps,
    {
      headers: () => {
        out.headers = true;
      },
      data: (chunk, end) => {
        out.data.push(Buffer.from(chunk).toString());
        out.end ||= end;
      },
      trailers: () => {},
    },
    limit,
    () => {
      out.overLimit = true;
    },
  );
  return { dir, trace, out };
}

const enc = (s: string) => Buffer.from(s);

test('everything continues: headers then data reach the terminal in order', () => {
  const { dir, trace, out } = setup([{}, {}]);
  dir.startHeaders(new HeaderMap(), false);
  dir.receiveData(enc('ab'), false);
  dir.receiveData(enc('c'), true);
  assert.deepEqual(trace, ['h0', 'h1', 'd0:ab', 'd1:ab', 'd0:c$', 'd1:c$']);
  assert.deepEqual(out, { headers: true, data: ['ab', 'c'], end: true, overLimit: false });
});

test('a headers stop holds later data at that filter and delivers it to it first on continue', () => {
  const { dir, trace, out } = setup([{}, { headers: HeadersStatus.StopIteration }, {}]);
  dir.startHeaders(new HeaderMap(), false);
  dir.receiveData(enc('x'), false);
  dir.receiveData(enc('y'), true);
  assert.deepEqual(trace, ['h0', 'h1', 'd0:x', 'd0:y$']);
  assert.equal(out.headers, false);
  dir.continueFrom(1);
  assert.deepEqual(trace.slice(4), ['h2', 'd1:xy$', 'd2:xy$']);
  assert.deepEqual(out.data, ['xy']);
  assert.equal(out.end, true);
});

test('StopAndBuffer re-presents the whole buffered body until the filter continues', () => {
  const { dir, trace, out } = setup([
    { data: (_b, end) => (end ? DataStatus.Continue : DataStatus.StopAndBuffer) },
    {},
  ]);
  dir.startHeaders(new HeaderMap(), false);
  dir.receiveData(enc('a'), false);
  dir.receiveData(enc('b'), false);
  dir.receiveData(enc('c'), true);
  assert.deepEqual(trace, ['h0', 'h1', 'd0:a', 'd0:ab', 'd0:abc$', 'd1:abc$']);
  assert.deepEqual(out.data, ['abc']);
});

test('a filter may rewrite the buffered body before passing it on', () => {
  const { dir, out } = setup([
    {
      data: (b, end) => {
        if (!end) return DataStatus.StopAndBuffer;
        b.replace(enc(Buffer.from(b.bytes()).toString().toUpperCase()));
        return DataStatus.Continue;
      },
    },
  ]);
  dir.startHeaders(new HeaderMap(), false);
  dir.receiveData(enc('hello '), false);
  dir.receiveData(enc('world'), true);
  assert.deepEqual(out.data, ['HELLO WORLD']);
});

test('buffering over the limit calls the over-limit handler', () => {
  const { dir, out } = setup([{ headers: HeadersStatus.StopIteration }], 4);
  dir.startHeaders(new HeaderMap(), false);
  dir.receiveData(enc('abc'), false);
  assert.equal(out.overLimit, false);
  dir.receiveData(enc('de'), false);
  assert.equal(out.overLimit, true);
});

test('continue after a data stop resumes from the next filter', () => {
  const { dir, trace, out } = setup([{ data: () => DataStatus.StopAndBuffer }, {}]);
  dir.startHeaders(new HeaderMap(), false);
  dir.receiveData(enc('q'), true);
  assert.deepEqual(out.data, []);
  dir.continueFrom(0);
  assert.deepEqual(trace, ['h0', 'h1', 'd0:q$', 'd1:q$']);
  assert.deepEqual(out.data, ['q']);
});
