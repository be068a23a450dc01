// cf_sign.mjs: signs with @aws-sdk/cloudfront-signer, the reference that tests/unit/test_cf.c
// compares mediaedge's signer with. Reads one JSON request from $CF_REQ: {"key": PEM path,
// "key_id", "url", "expires", optional "date_greater_than", "ip_address", "policy" (a policy
// JSON to sign as is), "algorithm" ("SHA256")}; prints {"url", "cookies"} as JSON.
import { readFileSync } from 'node:fs'
import { getSignedCookies, getSignedUrl } from '@aws-sdk/cloudfront-signer'

const req = JSON.parse(process.env.CF_REQ)
const when = (t) => (t ? new Date(t * 1000).toISOString() : undefined)
const args = {
  url: req.url,
  keyPairId: req.key_id,
  privateKey: readFileSync(req.key, 'utf8'),
  algorithm: req.algorithm,
}
if (req.policy) {
  args.policy = req.policy
} else {
  args.dateLessThan = when(req.expires)
  args.dateGreaterThan = when(req.date_greater_than)
  args.ipAddress = req.ip_address
}
process.stdout.write(JSON.stringify({ url: getSignedUrl(args), cookies: getSignedCookies(args) }))
