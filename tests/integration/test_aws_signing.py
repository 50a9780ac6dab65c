"""test_aws_signing — tintype's SigV4 against an independent signer,
@smithy/signature-v4 (the AWS SDK for JavaScript's, pinned by
tests/aws/package-lock.json, installed by scripts/install-deps.sh): the
requests tintype really sends (an S3 PUT with an object key that needs
encoding and a content type, an S3 HEAD, SQS JSON calls with a session
token) are captured by a loopback stub and re-signed by smithy from their
method, host, path, query, signed headers and body: the signatures must be
equal. A presigned GET tintype makes (with a token) must equal smithy's
presign at the same instant. Needs node and tests/aws/node_modules (a skip
otherwise)."""

import base64
import json
import os
import shutil
import subprocess
import urllib.parse

import awsutil
import ttharness as h
from ttharness import check, eq

AWSDIR = os.path.join(h.ROOT, "tests", "aws")
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDtoken+/=="


def smithy(reqs):
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(AWSDIR, "node_modules", "@smithy", "signature-v4")):
        raise h.Skip("node or tests/aws/node_modules missing (scripts/install-deps.sh)")
    p = subprocess.run([node, os.path.join(AWSDIR, "smithy_sign.mjs")], input="\n".join(json.dumps(r) for r in reqs),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    if p.returncode:
        raise RuntimeError("smithy_sign failed: " + p.stderr[-500:])
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def as_smithy(seen, service):
    """A captured request as smithy's input (only the headers tintype signed)."""
    method, target, hdrs, body = seen
    auth = hdrs["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    u = urllib.parse.urlsplit(target)
    query = {}
    for part in u.query.split("&") if u.query else []:
        k, _, v = part.partition("=")
        query[urllib.parse.unquote(k)] = urllib.parse.unquote(v)
    headers = {k: hdrs[k] for k in signed if k != "host"}
    return {"method": method, "host": hdrs["host"], "path": u.path, "query": query, "headers": headers,
            "body_b64": base64.b64encode(body).decode(), "akid": "AKIDSIGN", "secret": "sign/secret+key",
            "token": TOKEN, "region": "eu-west-1", "service": service, "date": hdrs["x-amz-date"],
            "s3": service == "s3"}, auth.split("Signature=")[1]


def env(url, **extra):
    e = awsutil.Moto().env("AKIDSIGN", "sign/secret+key", TOKEN, **extra)
    e["AWS_ENDPOINT_URL"] = url
    e["AWS_REGION"] = "eu-west-1"
    return e


def test_s3_requests():
    def handle(m, p, hd, b):
        if m == "PUT":
            return 200, {"ETag": '"e"'}, ""
        return 404, {}, ""

    stub = awsutil.Stub(handle)
    try:
        awsutil.run_driver(["blobs-put"], env(stub.url, TT_TEST_BLOBS_URL="s3://sign-bucket/a b/(x)*"))
        check(len(stub.seen) >= 1, "tintype sent S3 requests", ">= 1", len(stub.seen))
        ins, sigs = zip(*[as_smithy(s, "s3") for s in stub.seen]) if stub.seen else ((), ())
        out = smithy(list(ins))
        for i, (o, sig) in enumerate(zip(out, sigs)):
            eq(o["signature"], sig, "S3 %s %s: smithy's signature" % (stub.seen[i][0], stub.seen[i][1]))
        check(any("%20" in s[1] and "%28" in s[1] for s in stub.seen), "the key was sent encoded",
              "a%20b/%28x%29", [s[1] for s in stub.seen])
    finally:
        stub.stop()


def test_sqs_requests():
    def handle(m, p, hd, b):
        t = hd.get("x-amz-target", "")
        if t.endswith("GetQueueUrl"):
            return 200, {}, json.dumps({"QueueUrl": "http://127.0.0.1/1/s-jobs"})
        if t.endswith("GetQueueAttributes"):
            return 200, {}, json.dumps({"Attributes": {}})
        return 200, {}, json.dumps({"MessageId": "m"})

    stub = awsutil.Stub(handle)
    try:
        awsutil.run_driver(["queue-send"], env(stub.url, TT_TEST_QUEUE_URL="sqs://s"))
        eq(len(stub.seen), 3, "GetQueueUrl, GetQueueAttributes, SendMessage")
        check(all(s[2].get("x-amz-security-token") == TOKEN for s in stub.seen), "the session token is sent",
              TOKEN, [s[2].get("x-amz-security-token") for s in stub.seen])
        ins, sigs = zip(*[as_smithy(s, "sqs") for s in stub.seen])
        for i, (o, sig) in enumerate(zip(smithy(list(ins)), sigs)):
            eq(o["signature"], sig, "SQS %s: smithy's signature" % stub.seen[i][2].get("x-amz-target"))
    finally:
        stub.stop()


def test_presign():
    stub = awsutil.Stub(lambda m, p, hd, b: (404, {}, ""))
    try:
        rc, out = awsutil.run_driver(["blobs-link"], env(stub.url, TT_TEST_BLOBS_URL="s3://sign-bucket/pre"))
        links = [l[5:] for l in out.splitlines() if l.startswith("link ")]
        eq(len(links), 1, "tintype made a link")
        if not links:
            return
        u = urllib.parse.urlsplit(links[0])
        q = dict(urllib.parse.parse_qsl(u.query))
        ref = smithy([{"method": "GET", "host": u.netloc, "path": u.path, "query": {}, "headers": {},
                       "akid": "AKIDSIGN", "secret": "sign/secret+key", "token": TOKEN, "region": "eu-west-1",
                       "service": "s3", "date": q["X-Amz-Date"], "s3": True, "presign": int(q["X-Amz-Expires"])}])
        eq(q["X-Amz-Signature"], ref[0]["query"]["X-Amz-Signature"], "presigned: smithy's signature")
        eq(q.get("X-Amz-Security-Token"), TOKEN, "the token is in the link")
    finally:
        stub.stop()


if __name__ == "__main__":
    h.run("aws_signing", [test_s3_requests, test_sqs_requests, test_presign])
