"""test_aws_store — the dynamodb:// store against moto with authentication
on: `tintype aws init` creates the table (and the queues and bucket), twice
without harm; then the store contract suite (tests/unit/test_store.c, the
same binary the embedded backend runs) passes with TT_TEST_STORE_URL set:
unique email / api-key hash / (owner, idempotency key), conditional updates
on version (two racing writers: exactly one wins), lists newest first with
a cursor, state filters, deletes checked by version, and every later kind
(cache entries, batches, webhook deliveries listed by state across owners).
aws init also adds the state index (gsi2) to a table made without it."""

import os
import subprocess

import awsutil
import ttharness as h
from ttharness import check, eq

moto = awsutil.Moto()
keys = {}


def setup():
    moto.start()
    keys["full"] = moto.user("tt-full", awsutil.ALLOW_ALL)
    moto.auth_on()


def test_aws_init():
    env = moto.env(*keys["full"])
    args = [h.BIN, "aws", "init", "--store", "dynamodb://?prefix=st-", "--queue", "sqs://st",
            "--blobs", "s3://st-bucket/p"]
    for round_ in (1, 2):
        p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = p.stdout.decode(errors="replace")
        check(p.returncode == 0, "aws init round %d exits 0" % round_, 0, out[-800:])
        for what in ("table", "bucket", "queue"):
            check("ready: " + what in out, "round %d: %s ready" % (round_, what), what, out[-800:])
    akid, secret = keys["full"]
    d = moto.client("dynamodb", akid, secret).describe_table(TableName="st-records")["Table"]
    eq(d["TableStatus"], "ACTIVE", "the table is active")
    eq(sorted(g["IndexName"] for g in d.get("GlobalSecondaryIndexes", [])), ["gsi1", "gsi2"], "with its indexes")
    sqs = moto.client("sqs", akid, secret)
    for q in ("st-jobs", "st-images"):
        url = sqs.get_queue_url(QueueName=q)["QueueUrl"]
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        check('"maxReceiveCount": 5' in a.get("RedrivePolicy", "") or
              '"maxReceiveCount":5' in a.get("RedrivePolicy", "") or
              "'maxReceiveCount': 5" in a.get("RedrivePolicy", ""),
              q + " dead-letters after 5 receives", 5, a.get("RedrivePolicy"))
        eq(a.get("VisibilityTimeout"), "60", q + " visibility from --job-visibility-ms")
    names = [b["Name"] for b in moto.client("s3", akid, secret).list_buckets()["Buckets"]]
    check("st-bucket" in names, "the bucket exists", "st-bucket", names)


def test_aws_init_adds_state_index():
    """A table made before gsi2 existed (only gsi1) gets it from aws init."""
    akid, secret = keys["full"]
    ddb = moto.client("dynamodb", akid, secret)
    ddb.create_table(
        TableName="old-records", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "gsi1pk", "gsi1sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "gsi1", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [
            {"AttributeName": "gsi1pk", "KeyType": "HASH"}, {"AttributeName": "gsi1sk", "KeyType": "RANGE"}]}])
    p = subprocess.run([h.BIN, "aws", "init", "--store", "dynamodb://?prefix=old-"], env=moto.env(akid, secret),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 0 and "ready: table" in out, "aws init on the old table exits 0", 0, out[-800:])
    g = {x["IndexName"]: x.get("IndexStatus") for x in
         ddb.describe_table(TableName="old-records")["Table"]["GlobalSecondaryIndexes"]}
    eq(g, {"gsi1": "ACTIVE", "gsi2": "ACTIVE"}, "the state index was added")


def test_store_contract():
    env = moto.env(*keys["full"], TT_TEST_STORE_URL="dynamodb://?prefix=st-")
    awsutil.run_unit("store", env)


def main():
    try:
        h._run_one("moto start", setup)
        if not moto.proc:
            raise SystemExit(0)
        h.run("aws_store", [test_aws_init, test_aws_init_adds_state_index, test_store_contract])
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
