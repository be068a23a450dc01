#!/usr/bin/env node
// upload.mjs: uploads one file to a tus 1.0 endpoint with tus-js-client (the client the apps
// use), for tests/integration/test_tus_js.py.
//
// usage: node upload.mjs ENDPOINT TOKEN FILE CHUNK_SIZE [options]
//   --resume-from-previous   look the file up in the URL storage and resume that upload
//   --url-storage PATH       the on-disk URL storage (default FILE.tus-urls.json); every run
//                            records its upload URL there, so a later process can resume it
//   --stop-after-bytes N     exit (status 3, no clean-up: the app dying) as soon as at least
//                            N bytes have been acknowledged by the server in this run
//   --delay-ms N             wait N ms before each PATCH (a slow client)
//   --retry-delays A,B,...   tus-js-client's retryDelays in ms (default: none, fail at once)
//   --timeout-s N            give up after N seconds (default 50, status 4)
//   --protocol NAME          tus-js-client's protocol: tus-v1 (default), ietf-draft-03 or
//                            ietf-draft-05 (the IETF resumable-upload draft)
//   --origin URL             send Origin: URL on every request, as a web page on URL would
//                            (through tus-js-client's headers option)
//   --parallel N             tus-js-client's parallelUploads: N partial uploads at once, then a
//                            final one made of them (the concatenation extension)
//
// Prints one JSON line on stdout at the end, and exits 0 only when the upload completed:
//   {"ok":true,"url":...,"mediaId":...,"bytesSent":...,...}
//   {"ok":false,"error":...,"request":...,"response":...,...}
// bytesSent counts the PATCH body bytes this process handed to the socket (retries
// included); bytesAcked the bytes the server acknowledged (Upload-Offset advances) in this
// run; startOffset the Upload-Offset of this run's first PATCH; allowOrigins the distinct
// Access-Control-Allow-Origin values of the responses (null: a response without one).
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Readable, Transform } from 'node:stream'
import { DefaultHttpStack, FileUrlStorage, Upload } from 'tus-js-client'

function usage(msg) {
  process.stderr.write(`upload.mjs: ${msg}\nusage: node upload.mjs ENDPOINT TOKEN FILE CHUNK_SIZE ` +
    '[--resume-from-previous] [--url-storage PATH] [--stop-after-bytes N] [--delay-ms N] ' +
    '[--retry-delays A,B] [--timeout-s N] [--protocol NAME] [--origin URL] [--parallel N]\n')
  process.exit(2)
}

const positional = []
const opt = { resume: false, urlStorage: null, stopAfter: null, delayMs: 0, retryDelays: null, timeoutS: 50,
  protocol: 'tus-v1', origin: null, parallel: 1 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  const value = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`)
    return argv[++i]
  }
  const number = () => {
    const v = Number(value())
    if (!Number.isFinite(v) || v < 0) usage(`${a}: not a non-negative number`)
    return v
  }
  if (a === '--resume-from-previous') opt.resume = true
  else if (a === '--url-storage') opt.urlStorage = value()
  else if (a === '--stop-after-bytes') opt.stopAfter = number()
  else if (a === '--delay-ms') opt.delayMs = number()
  else if (a === '--timeout-s') opt.timeoutS = number()
  else if (a === '--protocol') opt.protocol = value()
  else if (a === '--origin') opt.origin = value()
  else if (a === '--parallel') {
    opt.parallel = number()
    if (!Number.isInteger(opt.parallel) || opt.parallel < 1) usage('--parallel: a positive integer')
  }
  else if (a === '--retry-delays') {
    opt.retryDelays = value().split(',').filter((s) => s !== '').map(Number)
    if (opt.retryDelays.some((d) => !Number.isFinite(d) || d < 0)) usage('--retry-delays: bad list')
  } else if (a.startsWith('--')) usage(`unknown option ${a}`)
  else positional.push(a)
}
if (positional.length !== 4) usage('four arguments expected')
const [endpoint, token, file] = positional
const chunkSize = Number(positional[3])
if (!Number.isInteger(chunkSize) || chunkSize <= 0) usage('CHUNK_SIZE must be a positive integer')
if (!fs.existsSync(file)) usage(`${file}: no such file`)

const state = {
  url: null,
  mediaId: null,
  bytesSent: 0, // PATCH body bytes written in this run
  bytesAcked: 0, // bytes acknowledged in this run
  startOffset: null, // Upload-Offset of the first PATCH of this run
  offset: null, // last acknowledged offset
  patches: 0,
  retries: 0,
  resumed: false,
  allowOrigins: [],
}
let finished = false

function finish(code, result) {
  if (finished) return
  finished = true
  const { url, mediaId, bytesSent, bytesAcked, startOffset, offset, patches, retries, resumed, allowOrigins } = state
  const line = JSON.stringify({ ...result, url, mediaId, bytesSent, bytesAcked, startOffset, offset,
    patches, retries, resumed, allowOrigins })
  // synchronously, then exit at once: when stopping, no further request may start
  fs.writeSync(1, `${line}\n`)
  process.exit(code)
}

// An HTTP stack that counts the body bytes of every request as they are handed to the socket.
class CountingHttpStack {
  constructor() {
    this._inner = new DefaultHttpStack()
  }

  createRequest(method, url) {
    const req = this._inner.createRequest(method, url)
    const send = req.send.bind(req)
    req.send = (body = null) => {
      if (body instanceof Readable) {
        const counter = new Transform({
          transform(chunk, _enc, cb) {
            state.bytesSent += chunk.length
            cb(null, chunk)
          },
        })
        counter.size = body.size // DefaultHttpStack sets Content-Length from it
        body.on('error', (e) => counter.destroy(e))
        body.pipe(counter)
        return send(counter)
      }
      if (body instanceof Uint8Array) state.bytesSent += body.length
      return send(body)
    }
    return req
  }

  getName() {
    return 'CountingHttpStack'
  }
}

function describeError(err) {
  const out = { ok: false, error: String(err && err.message ? err.message : err) }
  const req = err && err.originalRequest
  const res = err && err.originalResponse
  if (req) {
    const headers = { ...req._headers }
    if (headers.Authorization) headers.Authorization = 'Bearer <token>'
    out.request = { method: req.getMethod(), url: req.getURL(), headers }
  }
  if (res) {
    out.response = { status: res.getStatus(), headers: res.getUnderlyingObject()?.headers ?? {},
      body: String(res.getBody() ?? '').slice(0, 2000) }
  }
  if (err && err.causingError) out.cause = String(err.causingError.message || err.causingError)
  return out
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const storagePath = opt.urlStorage ?? `${file}.tus-urls.json`

const upload = new Upload(fs.createReadStream(file), {
  endpoint,
  chunkSize,
  protocol: opt.protocol,
  parallelUploads: opt.parallel,
  headers: { Authorization: `Bearer ${token}`, ...(opt.origin !== null ? { Origin: opt.origin } : {}) },
  metadata: { filename: path.basename(file), filetype: 'image/jpeg' },
  httpStack: new CountingHttpStack(),
  urlStorage: new FileUrlStorage(storagePath),
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: false,
  retryDelays: opt.retryDelays,
  onShouldRetry(err, attempt, options) {
    // tus-js-client's own rule: retry network errors and non-4xx (except 409/423) responses
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0
    const retry = !(status >= 400 && status < 500 && status !== 409 && status !== 423)
    if (retry) {
      state.retries++
      process.stderr.write(`upload.mjs: retry ${attempt + 1} after: ${err.message}\n`)
    }
    return retry
  },
  async onBeforeRequest(req) {
    if (req.getMethod() === 'PATCH') {
      if (state.startOffset === null) state.startOffset = Number(req.getHeader('Upload-Offset'))
      state.patches++
      if (opt.delayMs > 0) await sleep(opt.delayMs)
    }
  },
  onAfterResponse(req, res) {
    const allow = res.getHeader('Access-Control-Allow-Origin') ?? null
    if (!state.allowOrigins.includes(allow)) state.allowOrigins.push(allow)
    // the PATCH that completes an upload carries it, or with --parallel the POST of the final
    const id = res.getHeader('Media-Id')
    if (id) state.mediaId = String(id)
  },
  onUploadUrlAvailable() {
    state.url = upload.url
  },
  onChunkComplete(size, accepted) {
    state.bytesAcked += size
    state.offset = accepted
    if (opt.stopAfter !== null && state.bytesAcked >= opt.stopAfter && accepted < upload._size) {
      // the app dies here: no abort, no DELETE, the next PATCH is not sent
      finish(3, { ok: false, error: 'stopped', stopped: true })
    }
  },
  onSuccess() {
    state.url = upload.url
    finish(0, { ok: true, size: upload._size })
  },
  onError(err) {
    finish(1, describeError(err))
  },
})

setTimeout(() => finish(4, { ok: false, error: `timeout after ${opt.timeoutS} s` }), opt.timeoutS * 1000).unref()

if (opt.resume) {
  upload.findPreviousUploads().then((previous) => {
    if (previous.length > 0) {
      state.resumed = true
      upload.resumeFromPreviousUpload(previous[0])
    }
    upload.start()
  }, (err) => finish(1, describeError(err)))
} else {
  upload.start()
}
