// smithy_sign.mjs — the independent SigV4 signer of the AWS tests
// (tests/integration/test_aws_signing.py): @smithy/signature-v4, pinned by
// tests/aws/package-lock.json. Reads one JSON request per line on stdin,
// writes one JSON answer per line: {signature} for header signing
// ({method, host, path, query, headers, body_b64, akid, secret, token,
// region, service, date, s3}), {url} for presigning ({presign: expires, ...}).
import { SignatureV4 } from "@smithy/signature-v4";
import { HttpRequest } from "@smithy/protocol-http";
import { Hash } from "@smithy/hash-node";
import readline from "node:readline";

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const q = JSON.parse(line);
  const signer = new SignatureV4({
    credentials: { accessKeyId: q.akid, secretAccessKey: q.secret, sessionToken: q.token || undefined },
    region: q.region,
    service: q.service,
    sha256: Hash.bind(null, "sha256"),
    uriEscapePath: !q.s3,
    applyChecksum: false,
  });
  // "20261201T101500Z" -> Date
  const d = q.date;
  const when = new Date(Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11),
                                 +d.slice(11, 13), +d.slice(13, 15)));
  const req = new HttpRequest({
    method: q.method,
    protocol: "http:",
    hostname: q.host.split(":")[0],
    port: q.host.includes(":") ? +q.host.split(":")[1] : undefined,
    path: q.path,
    query: q.query || {},
    headers: Object.assign({ host: q.host }, q.headers || {}),
    body: q.body_b64 ? Buffer.from(q.body_b64, "base64") : undefined,
  });
  if (q.presign) {
    // S3 presigned GETs sign UNSIGNED-PAYLOAD (as @aws-sdk/s3-request-presigner):
    // the header gives the payload hash and is neither signed nor hoisted
    req.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
    const keep = new Set(["x-amz-content-sha256"]);
    const out = await signer.presign(req, { signingDate: when, expiresIn: q.presign,
                                            unsignableHeaders: keep, unhoistableHeaders: keep });
    const qs = Object.entries(out.query).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
    console.log(JSON.stringify({ query: out.query, qs }));
  } else {
    const out = await signer.sign(req, { signingDate: when });
    const auth = out.headers["authorization"];
    console.log(JSON.stringify({ authorization: auth, signature: auth.split("Signature=")[1] }));
  }
}
