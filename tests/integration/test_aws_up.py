"""test_aws_up — `tintype up --store dynamodb://… --queue sqs://… --blobs
s3://…` against moto: the whole product on the AWS backends.

`tintype aws init` makes the table, queues and bucket; then a user signs
up (the API key is found again through the unique item: read-your-writes),
a screenshot job of a page served here on 127.0.0.1 is rendered by the
worker, its /result answers 302 to a presigned S3 GET that serves a PNG
with the page's colours, and the object sits under the URL's prefix in the
bucket; an image uploaded with PUT /raw is processed by the worker from S3
and its processed bytes come back through their presigned link.

moto 5.2.1 answers every presigned GET with 500 while its authentication
is on (a moto bug), so this test runs moto without auth; signatures,
tokens and IAM policies are checked by it.aws_queue/blobs/store."""
import atexit
import time
import urllib.request

import awsutil
import imgutil
import ttharness as h
from apiclient import call, new_user
from pageserver import BLUE, GREEN, RED, WHITE, Pages
from ttharness import SLOW, Server, check, eq

P = Pages("127.0.0.1")
atexit.register(P.stop)
moto = awsutil.Moto()
URLS = ["--store", "dynamodb://?prefix=up-", "--queue", "sqs://up", "--blobs", "s3://up-bucket/tt"]
S = None
_key = {}


def key():
    if "k" not in _key:
        _key["k"] = new_user(S.port, "aws")[1]
    return _key["k"]


def wait_state(path, final, timeout=60.0):
    deadline = time.monotonic() + timeout * SLOW
    j = {}
    while time.monotonic() < deadline:
        j = call(S.port, "GET", path, key=key()).j or {}
        if j.get("state") in final:
            return j
        time.sleep(0.2)
    return j


def follow(path, what):
    """GET path: a 302 to a presigned S3 GET on moto; returns its bytes."""
    r = call(S.port, "GET", path, key=key(), timeout=20)
    eq(r.status, 302, what + ": 302 to S3")
    loc = r.get("Location") or ""
    check(loc.startswith(moto.url + "/up-bucket/tt/") and "X-Amz-Signature=" in loc,
          what + ": Location is a presigned GET under the prefix", moto.url + "/up-bucket/tt/...", loc)
    if not loc.startswith("http://127.0.0.1:"):
        return b""
    with urllib.request.urlopen(loc, timeout=20) as resp:
        eq(resp.status, 200, what + ": the link serves")
        return resp.read()


def test_job_rendered_and_fetched():
    url = P.url("/blocks")
    r = call(S.port, "POST", "/api/jobs", key=key(), body={"url": url, "viewport": {"width": 640, "height": 480}})
    eq(r.status, 202, "POST /api/jobs 202")
    jid = (r.j or {}).get("id")
    j = wait_state("/api/jobs/%s" % jid, ("succeeded", "failed", "canceled"))
    eq(j.get("state"), "succeeded", "the job succeeded (error %r)" % j.get("error"))
    body = follow("/api/jobs/%s/result" % jid, "result")
    try:
        img = imgutil.decode_png(body)
    except ValueError as e:
        check(False, "the result is a PNG", "PNG", str(e))
        return
    eq(imgutil.image_info(body), ("png", 640, 480), "the result is a 640x480 PNG")
    from shotutil import px
    px("result", img, 50, 50, RED)
    px("result", img, 250, 50, GREEN)
    px("result", img, 50, 250, BLUE)
    px("result", img, 639, 479, WHITE)
    keys = [o["Key"] for o in moto.client("s3").list_objects_v2(Bucket="up-bucket").get("Contents", [])]
    check("tt/jobs/%s.png" % jid in keys, "the object is tt/jobs/ID.png in the bucket", jid, keys)
    # the listing (a GSI query) finds the job
    r = call(S.port, "GET", "/api/jobs", key=key())
    ids = [x.get("id") for x in ((r.j or {}).get("items") or (r.j or {}).get("jobs") or [])]
    check(jid in ids, "GET /api/jobs lists it", jid, r.body[:300])


def test_image_processed():
    data = imgutil.make_png(120, 80, lambda x, y: (128, 128, 128))
    r = call(S.port, "POST", "/api/images", key=key())
    eq(r.status, 201, "POST /api/images 201")
    iid = (r.j or {}).get("id")
    r = call(S.port, "PUT", "/api/images/%s/raw" % iid, key=key(), raw=data, ctype="application/octet-stream",
             timeout=30)
    eq(r.status, 200, "PUT /raw 200 (%r)" % r.body[:200])
    im = wait_state("/api/images/%s" % iid, ("processed", "failed"))
    eq(im.get("state"), "processed", "the image was processed (error %r)" % im.get("error"))
    body = follow("/api/images/%s/processed" % iid, "processed")
    try:
        eq(imgutil.image_info(body), ("png", 120, 80), "the processed image is a 120x80 PNG")
    except ValueError as e:
        check(False, "the processed bytes are an image", "png", str(e))


def main():
    global S
    try:
        h._run_one("moto start", moto.start)
        if not moto.proc:
            raise SystemExit(0)
        env = moto.env("test", "test", TINTYPE_ALLOW_NETWORKS="127.0.0.1/32")
        p = h.run_cli(["aws", "init"] + URLS, env=env, timeout=60)
        if p.returncode != 0:
            print("aws init failed:", p.stdout, p.stderr)
            raise SystemExit(1)
        S = Server(*(URLS + ["--concurrency", "2"]), processes=1, cmd="up", workers=1, env=env)
        h.run("aws_up", [test_job_rendered_and_fetched, test_image_processed], server=S)
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
