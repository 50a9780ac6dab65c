// sqs.mjs — local-aws-sqs (SQS, JSON protocol) on 127.0.0.1 only, for
// tests/integration/test_aws_queue_localsqs.py: `node sqs.mjs PORT`.
// Prints "listening PORT" once it accepts connections.
import { createSqsServer } from "local-aws-sqs";

const port = Number(process.argv[2] || 0);
const server = await createSqsServer({ port, hostname: "127.0.0.1" });
const addr = server.address ? server.address() : null;
console.log("listening " + (addr && addr.port ? addr.port : port));
