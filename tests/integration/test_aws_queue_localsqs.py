"""test_aws_queue_localsqs — the sqs:// queue against local-aws-sqs (npm,
tests/aws/emulators, SQS JSON protocol, on 127.0.0.1 through sqs.mjs),
chosen by AWS_ENDPOINT_URL: the same queue checks (tests/aws/aws_check.c
queue) as it.aws_queue runs on moto. local-aws-sqs answers an empty
receive with an empty body (not {}): the checks' empty receives pass
through that. Named skips for what it gets wrong: in-flight messages
counted in ApproximateNumberOfMessages, a visibility change counted as a
receive (so with a RedrivePolicy it dead-letters early), and a message
received with VisibilityTimeout 0 never handed back; no auth at all."""

import awsutil
import ttharness as h

emu = awsutil.NodeEmulator("sqs")
WHY = {
    "exact_counts": "local-aws-sqs counts in-flight messages in ApproximateNumberOfMessages",
    "receive_count": "local-aws-sqs counts a visibility change as a receive",
    "visibility_zero": "local-aws-sqs never hands back a message received with VisibilityTimeout 0",
}
NAMES = {
    "exact_counts": "in-flight messages are not counted as visible",
    "receive_count": "a visibility change is not a receive",
    "visibility_zero": "a message received with visibility 0 is received again, then dead-lettered",
}


def test_queue_checks():
    out = awsutil.check_driver(["queue"], emu.env(TT_TEST_QUEUE_URL="sqs://c1?create=1",
                                                  TT_TEST_LACKS=awsutil.lacks(**WHY)),
                               "queue checks pass against local-aws-sqs")
    for k in WHY:
        awsutil.check_skips(out, [NAMES[k]], WHY[k])


def test_auth():
    raise h.Skip("local-aws-sqs has no authentication (it.aws_queue checks signatures and IAM on moto)")


def main():
    try:
        h._run_one("local-aws-sqs start", emu.start)
        if not emu.proc:
            raise SystemExit(0)
        h.run("aws_queue_localsqs", [test_queue_checks, test_auth])
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
