"""test_aws_creds — where the AWS client's credentials come from, against
moto with authentication on (so a wrong, deleted or expired key fails):

- IMDSv2: a loopback stub (AWS_EC2_METADATA_SERVICE_ENDPOINT; never
  169.254.169.254) that answers 401 without the token of its PUT
  /latest/api/token hands out role credentials expiring in 6 s. A send
  every 100 ms runs for 9 s while the test rotates the keys (a new access
  key served, the old one deleted in moto once the client fetched the new
  one): every send succeeds, the client fetched again before expiry, and
  every metadata GET carried the token.
- container: AWS_CONTAINER_CREDENTIALS_FULL_URI on loopback with
  AWS_CONTAINER_AUTHORIZATION_TOKEN: the right token works; a wrong one is
  refused by the endpoint and the call fails with TT_EAUTH.
- no source at all: the call fails with TT_EAUTH and says so."""

import datetime
import json
import threading
import time

import awsutil
import ttharness as h
from ttharness import check, eq

moto = awsutil.Moto()
keys = {}


def setup():
    moto.start()
    keys["full"] = moto.user("tt-full", awsutil.ALLOW_ALL)
    keys["imds"] = moto.user("tt-imds", awsutil.ALLOW_ALL)
    moto.client("sqs").create_queue(QueueName="cr-jobs")
    moto.auth_on()


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Imds:
    def __init__(self, akid, secret, life_s):
        self.key = (akid, secret)
        self.life = life_s
        self.tokens = set()
        self.unauthorized = 0
        self.fetches = 0
        self.lock = threading.Lock()
        self.stub = awsutil.Stub(self.handle)

    def handle(self, method, path, hdrs, body):
        if method == "PUT" and path == "/latest/api/token":
            ttl = int(hdrs.get("x-aws-ec2-metadata-token-ttl-seconds", "0"))
            if not 1 <= ttl <= 21600:
                return 400, {}, "bad ttl"
            tok = "tok-%d" % (len(self.tokens) + 1)
            self.tokens.add(tok)
            return 200, {}, tok
        if hdrs.get("x-aws-ec2-metadata-token") not in self.tokens:
            self.unauthorized += 1
            return 401, {}, ""
        if path == "/latest/meta-data/iam/security-credentials/":
            return 200, {}, "tt-role"
        if path == "/latest/meta-data/iam/security-credentials/tt-role":
            with self.lock:
                akid, secret = self.key
                self.fetches += 1
            return 200, {"Content-Type": "application/json"}, json.dumps({
                "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": akid, "SecretAccessKey": secret,
                "Token": "", "LastUpdated": iso(time.time()), "Expiration": iso(time.time() + self.life)})
        if path == "/latest/meta-data/placement/region":
            return 200, {}, "us-east-1"
        return 404, {}, ""


def env_without_keys(**extra):
    e = moto.env("x", "x", **extra)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED", "AWS_REGION"):
        e.pop(k, None)
    return e


def test_imds_rotation():
    iam = moto.client("iam", *keys["full"])
    old = keys["imds"]
    imds = Imds(old[0], old[1], 6)
    try:
        env = env_without_keys(AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.stub.url, TT_TEST_QUEUE_URL="sqs://cr")
        result = {}

        def drive():
            result["rc"], result["out"] = awsutil.run_driver(["queue-loop", "9000"], env, timeout=120)

        t = threading.Thread(target=drive)
        t.start()
        # wait for the first fetch, then serve a new key
        deadline = time.monotonic() + 20
        while imds.fetches < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        eq(imds.fetches, 1, "the client fetched role credentials from IMDS")
        k = iam.create_access_key(UserName="tt-imds")["AccessKey"]
        with imds.lock:
            imds.key = (k["AccessKeyId"], k["SecretAccessKey"])
        # the client refreshes before the 6 s expiry; then the old key goes
        deadline = time.monotonic() + 20
        while imds.fetches < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        check(imds.fetches >= 2, "the client fetched again before expiry", ">= 2", imds.fetches)
        iam.delete_access_key(UserName="tt-imds", AccessKeyId=old[0])
        t.join(130)
        out = result.get("out", "")
        check(result.get("rc") == 0 and "failed 0" in out, "every send succeeded across the rotation",
              "failed 0", out[-800:])
        eq(imds.unauthorized, 0, "every metadata GET carried the session token")
        check(k["SecretAccessKey"] not in out and old[1] not in out, "the secrets are never logged")
    finally:
        imds.stub.stop()


def test_imds_requires_token():
    """A client that skipped the token PUT would get 401s: the stub's count
    above is 0, and here a stub that refuses every token fails clearly."""
    refuse = awsutil.Stub(lambda m, p, hd, b: (401, {}, "") if m == "GET" else (200, {}, "tok"))
    try:
        env = env_without_keys(AWS_EC2_METADATA_SERVICE_ENDPOINT=refuse.url, TT_TEST_QUEUE_URL="sqs://cr")
        rc, out = awsutil.run_driver(["queue-send"], env)
        check("status TT_EAUTH" in out, "refused metadata: TT_EAUTH", "status TT_EAUTH", out[-600:])
        check("no AWS credentials" in out, "the log says there are no credentials", "no AWS credentials",
              out[-600:])
    finally:
        refuse.stop()


def test_container_credentials():
    akid, secret = keys["full"]
    body = json.dumps({"AccessKeyId": akid, "SecretAccessKey": secret, "Token": "",
                       "Expiration": iso(time.time() + 3600)})

    def handle(method, path, hdrs, b):
        if path != "/creds":
            return 404, {}, ""
        if hdrs.get("authorization") != "Bearer s3cret":
            return 401, {}, ""
        return 200, {"Content-Type": "application/json"}, body

    stub = awsutil.Stub(handle)
    try:
        base = dict(AWS_CONTAINER_CREDENTIALS_FULL_URI=stub.url + "/creds",
                    AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9", TT_TEST_QUEUE_URL="sqs://cr",
                    AWS_REGION="us-east-1")
        rc, out = awsutil.run_driver(["queue-send"], env_without_keys(
            AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer s3cret", **base))
        check("status TT_OK" in out, "container credentials work", "status TT_OK", out[-600:])
        rc, out = awsutil.run_driver(["queue-send"], env_without_keys(
            AWS_CONTAINER_AUTHORIZATION_TOKEN="Bearer wrong", **base))
        check("status TT_EAUTH" in out, "a wrong authorization token: TT_EAUTH", "status TT_EAUTH", out[-600:])
        check(all(s[2].get("authorization", "").startswith("Bearer ") for s in stub.seen),
              "the token was sent as Authorization", "Bearer ...", [s[2].get("authorization") for s in stub.seen])
    finally:
        stub.stop()


def test_no_credentials():
    env = env_without_keys(AWS_EC2_METADATA_DISABLED="true", TT_TEST_QUEUE_URL="sqs://cr")
    rc, out = awsutil.run_driver(["queue-send"], env)
    check("status TT_EAUTH" in out, "no source: TT_EAUTH", "status TT_EAUTH", out[-600:])


def main():
    try:
        h._run_one("moto start", setup)
        if not moto.proc:
            raise SystemExit(0)
        h.run("aws_creds", [test_imds_rotation, test_imds_requires_token, test_container_credentials,
                            test_no_credentials])
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
