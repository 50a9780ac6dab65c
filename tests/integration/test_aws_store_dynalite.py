"""test_aws_store_dynalite — the dynamodb:// store against dynalite (npm,
tests/aws/emulators), chosen by AWS_ENDPOINT_URL: `tintype aws init`
creates the table and its two indexes, then the same store contract suite
(tests/unit/test_store.c) as it.aws_store runs on moto. dynalite has no
TransactWriteItems, so the cases that need unique items (email, key hash,
idempotency key) are named skips, and a run without the skip shows that the
emulator really lacks it (tintype reports TT_ENOTSUP, not a silent pass).
Every other case — conditional updates, lists, cursors, state listings,
cache entries, batches, webhook deliveries — runs."""

import os
import subprocess

import awsutil
import ttharness as h
from ttharness import check

emu = awsutil.NodeEmulator("dynalite")
WHY = "dynalite lacks TransactWriteItems"
TX_CASES = ("user_unique_keys", "job_idempotency_key", "job_key_freed_by_delete")


def test_aws_init():
    p = subprocess.run([h.BIN, "aws", "init", "--store", "dynamodb://?prefix=dl-"], env=emu.env(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 0 and "ready: table" in out, "aws init creates the table on dynalite", 0, out[-800:])


def test_store_contract():
    env = emu.env(TT_TEST_STORE_URL="dynamodb://?prefix=dl-", TT_TEST_LACKS=awsutil.lacks(transactions=WHY))
    out = awsutil.run_unit("store", env)
    awsutil.check_skips(out, TX_CASES, WHY)
    for c in ("update_conditional", "list_pages", "list_filters", "delete_versioned", "cache_entries",
              "batches", "deliveries"):
        check("case %s: ok" % c in out, "case %s runs and passes" % c, "ok",
              [l for l in out.splitlines() if l.startswith("case ")])


def test_skip_is_real():
    env = emu.env(TT_TEST_STORE_URL="dynamodb://?prefix=dl-")
    b = os.path.join(os.path.dirname(h.BIN), "test_store" + ("-asan" if h.BIN.endswith("-asan") else ""))
    p = subprocess.run([b, "user_unique_keys"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    out = p.stdout.decode(errors="replace")
    check(p.returncode != 0, "without the skip the case fails on dynalite", "non-zero", p.returncode)
    check("does not implement this operation" in out, "tintype names the missing operation",
          "does not implement this operation", out[-600:])


def main():
    try:
        h._run_one("dynalite start", emu.start)
        if not emu.proc:
            raise SystemExit(0)
        h.run("aws_store_dynalite", [test_aws_init, test_store_contract, test_skip_is_real])
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
