#!/usr/bin/env node
// h2upload.mjs: several tus 1.0 uploads sharing one HTTP/2 connection (h2c, prior knowledge),
// each resuming on a new shared connection when that one dies, for test_badnet.py.
//
// usage: node h2upload.mjs BASE_URL TOKEN CHUNK_SIZE FILE... [--timeout-s N] [--max-retries N]
//   BASE_URL   http://host:port (the uploads go to BASE_URL/v1/uploads)
//   each FILE is uploaded by its own loop: POST (creation), then PATCHes of CHUNK_SIZE bytes;
//   a failed request (the connection cut: every stream dies with it) makes the loop wait for
//   a new connection (one, shared by all the loops), ask HEAD for the offset and go on.
//
// Prints one JSON line on stdout and exits 0 only when every upload completed:
//   {"ok":true,"uploads":[{"file","url","mediaId","bytesSent","retries","patches"}...],
//    "connections":N,"deaths":[{"inFlight":K,"error":...}...]}
// bytesSent counts the PATCH body bytes handed to the HTTP/2 session (retries included);
// deaths lists each connection that died while uploads were running, with how many of the
// uploads had a request in flight on it.
import * as fs from 'node:fs'
import * as http2 from 'node:http2'
import * as path from 'node:path'

function usage(msg) {
  process.stderr.write(`h2upload.mjs: ${msg}\nusage: node h2upload.mjs BASE_URL TOKEN CHUNK_SIZE FILE... ` +
    '[--timeout-s N] [--max-retries N]\n')
  process.exit(2)
}

const positional = []
const opt = { timeoutS: 120, maxRetries: 30 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  if (a === '--timeout-s' || a === '--max-retries') {
    const v = Number(argv[++i])
    if (!Number.isFinite(v) || v <= 0) usage(`${a}: a positive number`)
    opt[a === '--timeout-s' ? 'timeoutS' : 'maxRetries'] = v
  } else if (a.startsWith('--')) usage(`unknown option ${a}`)
  else positional.push(a)
}
if (positional.length < 4) usage('BASE_URL TOKEN CHUNK_SIZE FILE... expected')
const [base, token, chunkArg, ...files] = positional
const chunkSize = Number(chunkArg)
if (!Number.isInteger(chunkSize) || chunkSize <= 0) usage('CHUNK_SIZE: a positive integer')
for (const f of files) if (!fs.existsSync(f)) usage(`${f}: no such file`)

const PIECE = 64 * 1024
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const result = { connections: 0, deaths: [] }
const uploads = files.map((file) => ({ file, size: fs.statSync(file).size, url: null, mediaId: null,
  bytesSent: 0, retries: 0, patches: 0, offset: 0, inFlight: false, done: false }))

let session = null
function getSession() {
  if (session !== null && !session.closed && !session.destroyed) return session
  const s = http2.connect(base)
  result.connections++
  s.on('error', () => {}) // reported through the streams that die with it
  s.once('close', () => {
    const inFlight = uploads.filter((u) => u.inFlight).length
    if (uploads.some((u) => !u.done)) result.deaths.push({ connection: result.connections, inFlight })
    if (session === s) session = null
  })
  session = s
  return s
}

// One request on the shared connection; resolves {status, headers} once the response ended.
function request(u, headers, body = null) {
  return new Promise((resolve, reject) => {
    let req
    try {
      req = getSession().request({ authorization: `Bearer ${token}`, 'tus-resumable': '1.0.0', ...headers },
        { endStream: body === null })
    } catch (e) {
      reject(e)
      return
    }
    let response = null
    let settled = false
    const fail = (e) => {
      if (settled) return
      settled = true
      reject(e)
    }
    req.setTimeout(60000, () => {
      req.close(http2.constants.NGHTTP2_CANCEL)
      fail(new Error('request timed out'))
    })
    req.on('response', (h) => { response = h })
    req.on('error', fail)
    req.on('data', () => {})
    req.on('end', () => {
      if (settled) return
      if (response === null) return fail(new Error('stream ended without a response'))
      settled = true
      resolve({ status: response[':status'], headers: response })
    })
    req.on('close', () => fail(new Error(`stream closed (rst ${req.rstCode})`)))
    if (body !== null) {
      // in pieces, each counted once the session took it
      let at = 0
      const next = () => {
        while (at < body.length) {
          const piece = body.subarray(at, Math.min(at + PIECE, body.length))
          at += piece.length
          const more = req.write(piece, (err) => { if (!err) u.bytesSent += piece.length })
          if (!more) {
            req.once('drain', next)
            return
          }
        }
        req.end()
      }
      next()
    }
  })
}

async function readChunk(fd, offset, length) {
  const buf = Buffer.alloc(length)
  const { bytesRead } = await fd.read(buf, 0, length, offset)
  return buf.subarray(0, bytesRead)
}

async function runOne(u) {
  const fd = await fs.promises.open(u.file, 'r')
  let failures = 0
  const attempt = async (what) => {
    u.inFlight = true
    try {
      return await what()
    } finally {
      u.inFlight = false
    }
  }
  try {
    while (!u.done) {
      try {
        if (u.url === null) {
          const meta = `filename ${Buffer.from(path.basename(u.file)).toString('base64')},` +
            `filetype ${Buffer.from('video/mp4').toString('base64')}`
          const r = await attempt(() => request(u, { ':method': 'POST', ':path': '/v1/uploads',
            'upload-length': String(u.size), 'upload-metadata': meta }))
          if (r.status !== 201) throw Object.assign(new Error(`POST: ${r.status}`), { fatal: r.status < 500 })
          u.url = new URL(r.headers.location, base).pathname
          continue
        }
        if (failures > 0) {
          const r = await attempt(() => request(u, { ':method': 'HEAD', ':path': u.url }))
          if (r.status !== 200 && r.status !== 204) {
            throw Object.assign(new Error(`HEAD: ${r.status}`), { fatal: r.status < 500 })
          }
          u.offset = Number(r.headers['upload-offset'])
          if (u.offset === u.size) {
            // completed, the answer lost: the media id is in the upload's HEAD too, if at all
            u.mediaId = r.headers['media-id'] ?? u.mediaId
            u.done = true
            break
          }
        }
        const chunk = await readChunk(fd, u.offset, Math.min(chunkSize, u.size - u.offset))
        u.patches++
        const r = await attempt(() => request(u, { ':method': 'PATCH', ':path': u.url,
          'upload-offset': String(u.offset), 'content-type': 'application/offset+octet-stream',
          'content-length': String(chunk.length) }, chunk))
        if (r.status !== 204) throw Object.assign(new Error(`PATCH: ${r.status}`), { fatal: r.status < 500 && r.status !== 409 })
        u.offset = Number(r.headers['upload-offset'])
        failures = 0
        if (r.headers['media-id']) u.mediaId = String(r.headers['media-id'])
        if (u.offset === u.size) u.done = true
      } catch (e) {
        if (e.fatal || ++failures > opt.maxRetries) throw e
        u.retries++
        process.stderr.write(`h2upload.mjs: ${path.basename(u.file)}: retry ${failures} after: ${e.message}\n`)
        await sleep(Math.min(200 * failures, 2000))
      }
    }
  } finally {
    await fd.close()
  }
}

function finish(code, extra) {
  const line = JSON.stringify({ ...extra, ...result,
    uploads: uploads.map(({ file, url, mediaId, bytesSent, retries, patches, offset, size }) =>
      ({ file, url, mediaId, bytesSent, retries, patches, offset, size })) })
  fs.writeSync(1, `${line}\n`)
  process.exit(code)
}

setTimeout(() => finish(4, { ok: false, error: `timeout after ${opt.timeoutS} s` }), opt.timeoutS * 1000).unref()
Promise.all(uploads.map(runOne)).then(
  () => finish(0, { ok: true }),
  (e) => finish(1, { ok: false, error: String(e.message ?? e) }))
