"""test_aws_queue — the sqs:// queue against moto with authentication on:
the queue checks of tests/aws/aws_check.c (send/receive/delete, visibility,
delay + long poll, RedrivePolicy dead-lettering, batched deletes and
visibility changes, purge, close ending a long poll); a wrong secret fails
with a clear TT_EAUTH and a log line naming the action; a session token
from STS is honoured (and its absence refused); a policy that denies one
action makes exactly that operation fail."""

import json

import awsutil
import ttharness as h
from ttharness import check, eq

moto = awsutil.Moto()
keys = {}


def setup():
    moto.start()
    keys["full"] = moto.user("tt-full", awsutil.ALLOW_ALL)
    keys["nodelete"] = moto.user("tt-nodelete", awsutil.deny("sqs:DeleteMessage"))
    keys["role"] = moto.role("tt-role", awsutil.ALLOW_ALL)
    moto.auth_on()


def test_queue_contract():
    env = moto.env(*keys["full"], TT_TEST_QUEUE_URL="sqs://c1?create=1")
    awsutil.check_driver(["queue"], env, "queue checks pass against moto")


def test_wrong_secret():
    akid, _ = keys["full"]
    env = moto.env(akid, "not-the-secret", TT_TEST_QUEUE_URL="sqs://c2?create=1")
    rc, out = awsutil.run_driver(["queue-send"], env)
    check("status TT_EAUTH" in out, "a wrong secret fails as TT_EAUTH", "status TT_EAUTH", out[-600:])
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    fails = [l for l in lines if l.get("msg") == "aws call failed"]
    check(any(l.get("code") == "SignatureDoesNotMatch" for l in fails),
          "the log names AWS's code", "SignatureDoesNotMatch", fails)
    check(all("not-the-secret" not in json.dumps(l) for l in lines), "the secret is never logged")


def test_session_token():
    akid, secret = keys["full"]
    sts = moto.client("sts", akid, secret)
    c = sts.assume_role(RoleArn=keys["role"], RoleSessionName="tintype")["Credentials"]
    env = moto.env(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                   TT_TEST_QUEUE_URL="sqs://c3?create=1")
    rc, out = awsutil.run_driver(["queue-send"], env)
    check("status TT_OK" in out, "temporary credentials with their token work", "status TT_OK", out[-600:])
    env.pop("AWS_SESSION_TOKEN")
    rc, out = awsutil.run_driver(["queue-send"], env)
    check("status TT_EAUTH" in out, "the same keys without the token are refused", "status TT_EAUTH",
          out[-600:])


def test_denied_action():
    env = moto.env(*keys["nodelete"], TT_TEST_QUEUE_URL="sqs://c4?create=1")
    out = awsutil.check_driver(["queue-denied-delete"], env, "only DeleteMessage fails")
    check("delete TT_EAUTH" in out, "delete refused", "delete TT_EAUTH", out[-400:])


def main():
    try:
        h._run_one("moto start", setup)
        if not moto.proc:
            raise SystemExit(0)
        h.run("aws_queue", [test_queue_contract, test_wrong_secret, test_session_token,
                            test_denied_action])
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
