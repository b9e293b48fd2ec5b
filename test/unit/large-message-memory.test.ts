/**
 * Bounded memory for large messages (osci-protocol.md §13: 200 MB per message): the bench scenario signs,
 * transport-encrypts, parses, decrypts and verifies a message with a 200 MiB attachment in a child process, whose
 * peak RSS (VmHWM) must stay under 256 MiB and barely above that of a 20 MiB message.
 * Memory only; no timing is asserted.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { LargeMessageResult } from '../../bench/scenarios/large-message.ts';
import { REPO_ROOT } from '../helpers/env.ts';

function run(sizeMb: number): LargeMessageResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'scenarios', 'large-message.ts'), '--size-mb', String(sizeMb)], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    maxBuffer: 1024 * 1024,
  });
  expect(r.status, r.stderr).to.equal(0);
  const line = r.stdout.trim().split('\n').pop() as string;
  return JSON.parse(line) as LargeMessageResult;
}

describe('large message: bounded memory', function () {
  this.timeout(600_000);

  it('a 200 MiB attachment is encoded, encrypted, decoded and verified with peak RSS under 256 MiB', () => {
    const small = run(20);
    const large = run(200);
    expect(small.verified).to.equal(true);
    expect(large.verified).to.equal(true);
    expect(large.wire_bytes).to.be.greaterThan(200 * 1024 * 1024);
    expect(large.peak_rss_mb, JSON.stringify(large)).to.be.below(256);
    // Streaming: ten times the data costs (almost) no extra memory.
    expect(large.peak_rss_mb - small.peak_rss_mb, `${small.peak_rss_mb} → ${large.peak_rss_mb} MiB`).to.be.below(64);
  });
});
