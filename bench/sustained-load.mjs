#!/usr/bin/env node
// bench/sustained-load.mjs: the HEAD + small PATCH mix of bench/sustained over h2c (prior
// knowledge), with offsets that stay right: h2load sends the same request over and over, so
// its PATCHes would carry the same Upload-Offset and all but the first would be 409s. Here
// each of CONNECTIONS x STREAMS workers owns one tus upload (created with a long
// Upload-Length) and loops: HEAD (share HEAD_SHARE) or PATCH of PATCH_BYTES at the offset it
// knows, one request at a time, for SECONDS; then it deletes its upload.
//
// usage: node sustained-load.mjs BASE_URL TOKEN [--connections 8] [--streams 8]
//        [--seconds 60] [--patch-bytes 4096] [--head-share 0.5]
// Prints one JSON line: {"requests":{"HEAD":n,"PATCH":n},"errors":{...},"ms":{"HEAD":{"p50",
// "p99","max"},"PATCH":{...}},"rps":...,"seconds":...}. An error is any answer other than 204
// (200 for HEAD too), a wrong Upload-Offset, or a stream or connection failure.
import * as http2 from 'node:http2'

const positional = []
const opt = { connections: 8, streams: 8, seconds: 60, patchBytes: 4096, headShare: 0.5 }
const names = { '--connections': 'connections', '--streams': 'streams', '--seconds': 'seconds',
  '--patch-bytes': 'patchBytes', '--head-share': 'headShare' }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  if (names[argv[i]]) opt[names[argv[i]]] = Number(argv[++i])
  else if (argv[i].startsWith('--')) throw new Error(`unknown option ${argv[i]}`)
  else positional.push(argv[i])
}
if (positional.length !== 2) {
  process.stderr.write('usage: node sustained-load.mjs BASE_URL TOKEN [--connections N] [--streams N] ' +
    '[--seconds S] [--patch-bytes N] [--head-share F]\n')
  process.exit(2)
}
const [base, token] = positional
const body = Buffer.alloc(opt.patchBytes, 0x61)
const LENGTH = 1 << 30 // never reached: each worker's upload stays open
const ms = { HEAD: [], PATCH: [] }
const requests = { HEAD: 0, PATCH: 0, POST: 0 }
const errors = {}
const fail = (what) => { errors[what] = (errors[what] ?? 0) + 1 }

function call(session, headers, data = null) {
  return new Promise((resolve, reject) => {
    const req = session.request({ authorization: `Bearer ${token}`, 'tus-resumable': '1.0.0', ...headers },
      { endStream: data === null })
    let res = null
    req.on('response', (h) => { res = h })
    req.on('data', () => {})
    req.on('error', reject)
    req.on('end', () => (res ? resolve(res) : reject(new Error('no response'))))
    req.setTimeout(30000, () => req.close(http2.constants.NGHTTP2_CANCEL))
    if (data !== null) req.end(data)
  })
}

async function worker(session, until) {
  let url = null
  let offset = 0
  while (performance.now() < until) {
    try {
      if (url === null) {
        requests.POST++
        const r = await call(session, { ':method': 'POST', ':path': '/v1/uploads', 'upload-length': String(LENGTH) })
        if (r[':status'] !== 201) { fail(`POST ${r[':status']}`); continue }
        url = new URL(r.location, base).pathname
        offset = 0
        continue
      }
      const head = Math.random() < opt.headShare
      const method = head ? 'HEAD' : 'PATCH'
      const t0 = performance.now()
      const r = head
        ? await call(session, { ':method': 'HEAD', ':path': url })
        : await call(session, { ':method': 'PATCH', ':path': url, 'upload-offset': String(offset),
          'content-type': 'application/offset+octet-stream' }, body)
      const took = performance.now() - t0
      requests[method]++
      const status = r[':status']
      if (status !== 204 && !(head && status === 200)) { fail(`${method} ${status}`); url = null; continue }
      const got = Number(r['upload-offset'])
      const want = head ? offset : offset + body.length
      if (got !== want) { fail(`${method} offset`); url = null; continue }
      offset = got
      ms[method].push(took)
    } catch (e) {
      fail(`stream: ${e.code ?? e.message}`)
      if (session.destroyed || session.closed) return
    }
  }
  if (url !== null) {
    // leave nothing behind: a long run (bench/sustained-rss) must not pile up open uploads
    try {
      const r = await call(session, { ':method': 'DELETE', ':path': url })
      if (r[':status'] !== 204) fail(`DELETE ${r[':status']}`)
    } catch (e) {
      fail(`stream: ${e.code ?? e.message}`)
    }
  }
}

function pct(v, p) {
  if (v.length === 0) return null
  const s = Float64Array.from(v).sort()
  return Math.round(s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] * 100) / 100
}

const t0 = performance.now()
const until = t0 + opt.seconds * 1000
const sessions = []
const work = []
for (let c = 0; c < opt.connections; c++) {
  const s = http2.connect(base)
  s.on('error', (e) => fail(`connection: ${e.code ?? e.message}`))
  sessions.push(s)
  for (let k = 0; k < opt.streams; k++) work.push(worker(s, until))
}
await Promise.all(work)
const seconds = (performance.now() - t0) / 1000
for (const s of sessions) s.close()
const summary = (v) => ({ p50: pct(v, 50), p99: pct(v, 99), max: pct(v, 100) })
process.stdout.write(JSON.stringify({ requests, errors, ms: { HEAD: summary(ms.HEAD), PATCH: summary(ms.PATCH) },
  rps: Math.round((requests.HEAD + requests.PATCH) / seconds), seconds: Math.round(seconds * 10) / 10, opt }) + '\n')
