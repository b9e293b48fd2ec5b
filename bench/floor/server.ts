/**
 * The platform floor (`npm run bench -- floor`): a server that does the work an OSCI intermediary cannot avoid for
 * a storeDelivery, and nothing of the protocol (no MIME, no XML, no C14N, no model, no trust lookup). What it reaches
 * on the same machine, driven by the same load generators, estimates the most an implementation on this platform
 * (Node.js, node:crypto, SQLite) reaches there; the intermediary's figures are compared to it as well as to the
 * hardware bound (BENCHMARKS.md).
 *
 * POST /small, per request (the node:crypto calls counted while the intermediary served storeDeliveries):
 *   RSA-OAEP unwrap of a 3072-bit transport key (private), AES-256-GCM decryption of the request's bytes, SHA-256
 *   of the plaintext, 4 RSA verifications (ClientSignature, certificates), the plaintext stored as one SQLite row
 *   (the store's settings: WAL, synchronous=NORMAL, group-committed fdatasync), an RSA signature on the libuv pool
 *   (private), RSA-OAEP wrap of a fresh key for the client and AES-256-GCM encryption of an answer of 8 KB.
 * POST /large, streamed: AES-256-GCM decryption, SHA-256, a delimiter search in the received and in the decrypted
 *   bytes (outer and inner MIME entity), written to a file flushed every 16 MiB in the background and fdatasynced
 *   at the end (as the intermediary's part files), then answered with the byte count.
 * The GCM tag is not checked (the bytes are the load generator's real requests, not ciphertext under this key);
 * checking it is a few microseconds per message.
 *
 * `node --import tsx bench/floor/server.ts --pki DIR --data DIR --workers N`; prints "floor listening on URL".
 */
import cluster from 'node:cluster';
import { constants, createCipheriv, createDecipheriv, createHash, publicEncrypt, privateDecrypt, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, createWriteStream, fdatasync, mkdirSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { workerExecArgv, workerMallocEnv } from '../../gateway/cluster.ts';
import { WalSync } from '../../gateway/store/wal-sync.ts';
import { benchIdentity } from '../pki.ts';

const { values } = parseArgs({ options: { pki: { type: 'string' }, data: { type: 'string' }, workers: { type: 'string', default: '1' } } });
const pkiDir = values.pki ?? '';
const dataDir = values.data ?? '';
const workers = Number(values.workers);
const ANSWER_BYTES = 8000;
/** As the intermediary's part files (gateway/osci/intermediary.ts SPILL_SYNC_BYTES). */
const SYNC_EVERY = 16 * 1024 * 1024;
/** Stands for the MIME boundary the intermediary searches for (not found in random bytes: the whole chunk is scanned). */
const DELIMITER = Buffer.from(`\r\n--MIME_boundary_${'x'.repeat(40)}`);

if (cluster.isPrimary && workers > 1) {
  mkdirSync(dataDir, { recursive: true });
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv) });
  const env = workerMallocEnv(process.env);
  let listening = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork(env).on('listening', (a) => {
      if (++listening === workers) console.log(`floor listening on http://127.0.0.1:${a.port}`);
    });
  }
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM');
  });
} else {
  serve();
}

function oaep(key: KeyObject) {
  return { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' };
}

function serve(): void {
  mkdirSync(dataDir, { recursive: true });
  const me = benchIdentity('intermediary', pkiDir);
  const sender = benchIdentity('ag-lemgo', pkiDir);
  const aesKey = randomBytes(32);
  const iv = randomBytes(12);
  const wrapped = publicEncrypt(oaep(me.cipher.cert.publicKey), aesKey);
  const signedInfo = randomBytes(1500);
  const clientSignature = sign('sha256', signedInfo, sender.signature.key);
  const answer = randomBytes(ANSWER_BYTES);

  const dbFile = join(dataDir, 'floor.sqlite');
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 10000');
  db.exec('CREATE TABLE IF NOT EXISTS message (id TEXT PRIMARY KEY, body BLOB NOT NULL, received_at INTEGER NOT NULL)');
  const insert = db.prepare('INSERT INTO message (id, body, received_at) VALUES (?, ?, ?)');
  const wal = new WalSync(`${dbFile}-wal`);
  let seq = 0;

  const small = async (body: Buffer, res: ServerResponse): Promise<void> => {
    const key = privateDecrypt(oaep(me.cipher.key), wrapped);
    const plain = createDecipheriv('aes-256-gcm', key, iv).update(body);
    createHash('sha256').update(plain).digest();
    for (let i = 0; i < 4; i++) if (!verify('sha256', signedInfo, sender.signature.cert.publicKey, clientSignature)) throw new Error('verify');
    insert.run(`${process.pid}-${seq++}`, plain, Date.now());
    await wal.sync();
    const signature = await new Promise<Buffer>((resolve, reject) => sign('sha256', createHash('sha256').update(signedInfo).digest(), me.signature.key, (e, s) => (e ? reject(e) : resolve(s))));
    const responseKey = randomBytes(32);
    const responseIv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', responseKey, responseIv);
    const out = Buffer.concat([publicEncrypt(oaep(sender.cipher.cert.publicKey), responseKey), signature, responseIv, c.update(answer), c.final(), c.getAuthTag()]);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': out.length });
    res.end(out);
  };

  const large = (req: IncomingMessage, res: ServerResponse): void => {
    const decipher = createDecipheriv('aes-256-gcm', aesKey, iv);
    const hash = createHash('sha256');
    const path = join(dataDir, `large-${process.pid}-${seq++}.bin`);
    const file = createWriteStream(path, { highWaterMark: 1024 * 1024 });
    let bytes = 0;
    let unsynced = 0;
    let fd: number | undefined;
    let flushing: Promise<void> | undefined;
    file.once('open', (n: number) => (fd = n));
    req.on('data', (chunk: Buffer) => {
      chunk.indexOf(DELIMITER);
      const plain = decipher.update(chunk);
      plain.indexOf(DELIMITER);
      hash.update(plain);
      bytes += plain.length;
      unsynced += plain.length;
      if (!file.write(plain)) {
        req.pause();
        file.once('drain', () => req.resume());
      }
      // Written back while it arrives, so that the last fdatasync finds little left to write.
      if (unsynced >= SYNC_EVERY && flushing === undefined && fd !== undefined) {
        unsynced = 0;
        const n = fd;
        flushing = new Promise<void>((resolve) => fdatasync(n, () => resolve())).then(() => (flushing = undefined));
      }
    });
    req.on('end', () => {
      hash.digest();
      // The descriptor stays open until a flush in progress has returned.
      void Promise.resolve(flushing).then(() => file.end(() => {
        const fd = openSync(path, 'r');
        fdatasync(fd, (e) => {
          closeSync(fd);
          res.writeHead(e ? 500 : 200, { 'content-type': 'text/plain' });
          res.end(String(bytes), () => void rm(path, { force: true }));
        });
      }));
    });
  };

  const server = createServer((req, res) => {
    const fail = (e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    };
    if (req.method === 'POST' && req.url === '/large') {
      large(req, res);
      return;
    }
    if (req.method !== 'POST' || req.url !== '/small') {
      res.writeHead(404);
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => small(Buffer.concat(chunks), res).catch(fail));
  });
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    if (!cluster.isWorker && a && typeof a === 'object') console.log(`floor listening on http://127.0.0.1:${a.port}`);
  });
  process.on('SIGTERM', () => {
    server.close(() => {
      void wal.close().then(() => {
        db.close();
        process.exit(0);
      });
    });
  });
}
