"""test_aws_faults — the AWS client under failure, on loopback only:

- keep-alive: against an HTTP/1.1 endpoint every call of a process
  shares one connection (moto's server closes after each answer, so the
  bench's connection counts against moto are moto's, not ours);
- throttling: a stub SQS answers SendMessage with 400 ThrottlingException
  twice, and a stub S3 answers PutObject with 503 SlowDown twice; the call
  then succeeds, after exactly three attempts spaced by the backoff the log
  reports;
- a hung endpoint (accepts, never answers): with TINTYPE_AWS_TIMEOUT_MS
  the call fails with TT_ETIMEDOUT and a log line "aws call timed out"
  naming the action, after AWS_MAX_ATTEMPTS attempts;
- the emulator killed mid-run and restarted on the same port: a send every
  100 ms keeps going, the sends during the outage are retried (the log
  says "Couldn't connect") and every one of them succeeds."""

import json
import threading
import time

import awsutil
import ttharness as h
from ttharness import check, eq


def logs(out, msg):
    res = []
    for l in out.splitlines():
        if l.startswith("{"):
            try:
                j = json.loads(l)
            except ValueError:
                continue
            if j.get("msg") == msg:
                res.append(j)
    return res


def base_env(url, **extra):
    e = awsutil.Moto().env("AKIDSTUB", "stub-secret", **extra)
    e["AWS_ENDPOINT_URL"] = url
    e["TINTYPE_AWS_BACKOFF_MS"] = "50"
    return e


def test_sqs_throttling():
    state = {"sends": 0}

    def handle(method, path, hdrs, body):
        target = hdrs.get("x-amz-target", "")
        if target.endswith(".GetQueueUrl"):
            return 200, {}, json.dumps({"QueueUrl": "http://127.0.0.1/123/t-jobs"})
        if target.endswith(".GetQueueAttributes"):
            return 200, {}, json.dumps({"Attributes": {}})
        if target.endswith(".SendMessage"):
            state["sends"] += 1
            if state["sends"] <= 2:
                return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(
                    {"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"})
            return 200, {}, json.dumps({"MessageId": "m-1"})
        return 400, {}, "{}"

    stub = awsutil.Stub(handle)
    try:
        rc, out = awsutil.run_driver(["queue-send"], base_env(stub.url, TT_TEST_QUEUE_URL="sqs://t"))
        check("status TT_OK" in out, "throttled twice, then sent", "status TT_OK", out[-800:])
        eq(state["sends"], 3, "three attempts")
        eq(len(stub.conns), 1, "every request (GetQueueUrl, attributes, 3 sends) on one kept-alive connection")
        r = logs(out, "aws call retried")
        eq([x.get("code") for x in r], ["ThrottlingException"] * 2, "each retry names the throttling")
        check(all(isinstance(x.get("backoff_ms"), int) for x in r), "each retry says its backoff", "ints", r)
    finally:
        stub.stop()


def test_s3_slowdown():
    state = {"puts": 0}

    def handle(method, path, hdrs, body):
        if method == "PUT":
            state["puts"] += 1
            if state["puts"] <= 2:
                return 503, {"Content-Type": "application/xml"}, (
                    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
            return 200, {"ETag": '"abc"'}, ""
        return 404, {}, ""

    stub = awsutil.Stub(handle)
    try:
        rc, out = awsutil.run_driver(["blobs-put"], base_env(stub.url, TT_TEST_BLOBS_URL="s3://bucket/p"))
        check("put TT_OK" in out, "slowed down twice, then stored", "put TT_OK", out[-800:])
        eq(state["puts"], 3, "three attempts")
        eq([x.get("code") for x in logs(out, "aws call retried")], ["SlowDown"] * 2, "each retry names SlowDown")
        check(all(s[2].get("x-amz-content-sha256") for s in stub.seen if s[0] == "PUT"),
              "every S3 request carries x-amz-content-sha256", "set", [s[2] for s in stub.seen][:1])
    finally:
        stub.stop()


def test_hung_endpoint():
    stub = awsutil.Stub(lambda m, p, hd, b: (None, None, None))
    try:
        env = base_env(stub.url, TT_TEST_QUEUE_URL="sqs://t", TINTYPE_AWS_TIMEOUT_MS="500", AWS_MAX_ATTEMPTS="2")
        rc, out = awsutil.run_driver(["queue-send"], env, timeout=60)
        check("status TT_ETIMEDOUT" in out, "a hung endpoint times out", "status TT_ETIMEDOUT", out[-800:])
        t = logs(out, "aws call timed out")
        check(len(t) == 1 and t[0].get("action") == "sqs:GetQueueUrl" and t[0].get("attempts") == 2,
              "one clear log line: action and attempts", "sqs:GetQueueUrl after 2", t)
        eq(len(stub.seen), 2, "two attempts reached the endpoint")
    finally:
        stub.stop()


def test_emulator_restart():
    """moto is killed mid-run and a new one started; the deployment makes
    the queue again before traffic reaches it (a proxy on a fixed address
    stands for the endpoint's DNS name)."""
    moto = awsutil.Moto()
    moto.start()
    proxy = awsutil.Proxy(moto.port)
    moto2 = None
    try:
        moto.client("sqs").create_queue(QueueName="rs-jobs")
        env = moto.env("test", "test", TT_TEST_QUEUE_URL="sqs://rs", AWS_MAX_ATTEMPTS="10",
                       TINTYPE_AWS_BACKOFF_MS="200")
        env["AWS_ENDPOINT_URL"] = proxy.url
        result = {}

        def drive():
            result["rc"], result["out"] = awsutil.run_driver(["queue-loop", "6000"], env, timeout=120)

        t = threading.Thread(target=drive)
        t.start()
        sqs = moto.client("sqs")
        url = sqs.get_queue_url(QueueName="rs-jobs")["QueueUrl"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            n = int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"])
            if n >= 5:
                break
            time.sleep(0.05)
        moto.stop()  # killed (SIGKILL): its state is gone
        proxy.cut()
        moto2 = awsutil.Moto()
        moto2.start()
        moto2.client("sqs").create_queue(QueueName="rs-jobs")
        proxy.target = moto2.port  # the endpoint answers again
        t.join(130)
        out = result.get("out", "")
        check(result.get("rc") == 0 and "failed 0" in out, "every send succeeded across the restart",
              "failed 0", out[-800:])
        r = logs(out, "aws call retried")
        check(len(r) > 0, "sends during the outage were retried", "retries", r[:3])
        url2 = moto2.client("sqs").get_queue_url(QueueName="rs-jobs")["QueueUrl"]
        n2 = int(moto2.client("sqs").get_queue_attributes(QueueUrl=url2, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
        check(n2 >= 1, "the new emulator received the later sends", ">= 1", n2)
    finally:
        proxy.stop()
        moto.stop()
        if moto2:
            moto2.stop()


def main():
    try:
        awsutil.need_moto()
    except h.Skip as e:
        print("SKIP aws_faults: %s" % e)
        raise SystemExit(0)
    h.run("aws_faults", [test_sqs_throttling, test_s3_slowdown, test_hung_endpoint, test_emulator_restart])


if __name__ == "__main__":
    main()
