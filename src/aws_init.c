/* aws_init.c — `tintype aws init`: creates the AWS resources the backend URLs
 * name, against AWS or an emulator (moto, MinIO...), for development and
 * tests. Production resources come from CloudFormation (infra/); this is
 * its local twin: the same queue names (PREFIX-jobs, PREFIX-images, each
 * with PREFIX-Q-dlq and a RedrivePolicy), bucket and table layout
 * (src/store/dynamodb.c). Existing resources are left as they are.
 * It sits beside src/backends.c (layer backends): it opens a queue, so it
 * cannot live in src/aws/, which the backends use. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tintype/aws.h"
#include "tintype/config.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/queue.h"

int tt_store_dynamodb_table(const char *url, char *out, size_t n);

typedef struct init {
  uv_loop_t loop;
  tt_aws *aws;
  tt_queue *q;
  int pending, failed;
  char table[256];
  int polls, qleft, added;
  uv_timer_t wait;
} init;

static void step_done(init *in, int err, const char *what) {
  if (err) {
    in->failed = 1;
    fprintf(stderr, "tintype aws init: %s: %s\n", what, tt_strerror(err));
  } else {
    printf("ready: %s\n", what);
  }
  in->pending--;
}

static void on_declared(void *ud, int status) {
  init *in = ud;
  step_done(in, status, "queue");
  if (--in->qleft == 0) tt_queue_close(in->q, NULL, NULL);
}

static void on_bucket(void *ud, int err, const tt_aws_resp *r) {
  init *in = ud;
  if (err && (!strcmp(r->code, "BucketAlreadyOwnedByYou") || !strcmp(r->code, "BucketAlreadyExists")))
    err = 0;
  step_done(in, err, "bucket");
}

static void describe(init *in);
static void on_wait(uv_timer_t *t) { describe(t->data); }

/* the state index of src/store/dynamodb.c: NULL when the table has none,
 * else its IndexStatus */
static const char *gsi2_status(json_t *table) {
  json_t *g = json_object_get(table, "GlobalSecondaryIndexes");
  for (size_t i = 0; i < json_array_size(g); i++) {
    json_t *x = json_array_get(g, i);
    const char *n = json_string_value(json_object_get(x, "IndexName"));
    if (n && !strcmp(n, "gsi2")) {
      const char *st = json_string_value(json_object_get(x, "IndexStatus"));
      return st ? st : "ACTIVE";
    }
  }
  return NULL;
}

static void add_gsi2(init *in);

static void on_described(void *ud, int err, const tt_aws_resp *r) {
  init *in = ud;
  json_t *j = err ? NULL : json_loadb(r->body, r->len, 0, NULL);
  json_t *t = json_object_get(j, "Table");
  const char *st = json_string_value(json_object_get(t, "TableStatus"));
  const char *g2 = gsi2_status(t);
  int active = st && !strcmp(st, "ACTIVE") && g2 && !strcmp(g2, "ACTIVE");
  int add = !err && st && !strcmp(st, "ACTIVE") && !g2 && !in->added;
  json_decref(j);
  if (add) { /* a table made before the state index existed */
    in->added = 1;
    add_gsi2(in);
    return;
  }
  if (!err && !active && ++in->polls < 120) {
    uv_timer_start(&in->wait, on_wait, 1000, 0); /* a new table or index takes seconds on AWS */
    return;
  }
  step_done(in, err ? err : active ? 0 : TT_ETIMEDOUT, "table");
  uv_close((uv_handle_t *)&in->wait, NULL);
}

static void describe(init *in) {
  char body[400];
  snprintf(body, sizeof body, "{\"TableName\":\"%s\"}", in->table);
  tt_aws_call c = {.svc = TT_AWS_DYNAMODB,
                   .action = "dynamodb:DescribeTable", /* iam: setup-only */
                   .content_type = "application/x-amz-json-1.0",
                   .body = body,
                   .len = strlen(body)};
  tt_aws_call_start(in->aws, &c, on_described, in);
}

static void on_table(void *ud, int err, const tt_aws_resp *r) {
  init *in = ud;
  if (err && !strcmp(r->code, "ResourceInUseException")) err = 0;
  if (err) {
    step_done(in, err, "table");
    uv_close((uv_handle_t *)&in->wait, NULL);
    return;
  }
  describe(in);
}

static json_t *key_attrs(void) {
  return json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "AttributeName", "pk",
                   "AttributeType", "S", "AttributeName", "gsi1pk", "AttributeType", "S", "AttributeName",
                   "gsi1sk", "AttributeType", "S", "AttributeName", "gsi2pk", "AttributeType", "S",
                   "AttributeName", "gsi2sk", "AttributeType", "S");
}

/* gsi1 (listings) or gsi2 (listings by state), projection ALL */
static json_t *gsi(int n) {
  char name[8], pk[16], sk[16];
  snprintf(name, sizeof name, "gsi%d", n);
  snprintf(pk, sizeof pk, "gsi%dpk", n);
  snprintf(sk, sizeof sk, "gsi%dsk", n);
  return json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:{s:s}}", "IndexName", name, "KeySchema", "AttributeName", pk,
                   "KeyType", "HASH", "AttributeName", sk, "KeyType", "RANGE", "Projection", "ProjectionType",
                   "ALL");
}

static void table_call(init *in, const char *action, json_t *j, tt_aws_cb cb) {
  char *body = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  tt_aws_call c = {.svc = TT_AWS_DYNAMODB,
                   .action = action,
                   .content_type = "application/x-amz-json-1.0",
                   .body = body,
                   .len = body ? strlen(body) : 0};
  tt_aws_call_start(in->aws, &c, cb, in);
  free(body);
}

static void add_gsi2(init *in) {
  json_t *j = json_pack("{s:s,s:o,s:[{s:o}]}", "TableName", in->table, "AttributeDefinitions", key_attrs(),
                        "GlobalSecondaryIndexUpdates", "Create", gsi(2));
  table_call(in, "dynamodb:UpdateTable", /* iam: setup-only */ j, on_table);
}

static void create_table(init *in) {
  json_t *j = json_pack("{s:s,s:s,s:o,s:[{s:s,s:s}],s:[o,o]}", "TableName", in->table, "BillingMode",
                        "PAY_PER_REQUEST", "AttributeDefinitions", key_attrs(), "KeySchema", "AttributeName",
                        "pk", "KeyType", "HASH", "GlobalSecondaryIndexes", gsi(1), gsi(2));
  uv_timer_init(&in->loop, &in->wait);
  in->wait.data = in;
  table_call(in, "dynamodb:CreateTable", /* iam: setup-only */ j, on_table);
}

static void create_bucket(init *in, const char *url) {
  char bucket[64];
  size_t n = strcspn(url + 5, "/?");
  if (n < 3 || n >= sizeof bucket) {
    step_done(in, TT_EINVAL, "bucket");
    return;
  }
  memcpy(bucket, url + 5, n);
  bucket[n] = 0;
  int custom;
  const char *ep = tt_aws_endpoint(in->aws, TT_AWS_S3, &custom);
  char base[600], path[80];
  const char *h = strstr(ep, "://");
  if (custom) {
    snprintf(base, sizeof base, "%s", ep);
    snprintf(path, sizeof path, "/%s", bucket);
  } else {
    snprintf(base, sizeof base, "%.*s%s.%s", (int)(h ? h + 3 - ep : 0), ep, bucket, h ? h + 3 : ep);
    snprintf(path, sizeof path, "/");
  }
  const char *region = tt_aws_region(in->aws);
  char body[300] = "";
  if (strcmp(region, "us-east-1"))
    snprintf(body, sizeof body,
             "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
             "</CreateBucketConfiguration>",
             region);
  tt_aws_call c = {.svc = TT_AWS_S3,
                   .action = "s3:CreateBucket", /* iam: setup-only */
                   .base = base,
                   .method = "PUT",
                   .path = path,
                   .body = body,
                   .len = strlen(body)};
  tt_aws_call_start(in->aws, &c, on_bucket, in);
}

static void on_ready(void *ud, int err) {
  init *in = ud;
  in->failed |= err != 0;
  if (err) fprintf(stderr, "tintype aws init: no AWS credentials: %s\n", tt_strerror(err));
  in->pending--;
}

int tt_aws_init_main(const tt_config *cfg) {
  init in;
  memset(&in, 0, sizeof in);
  uv_loop_init(&in.loop);
  in.aws = tt_aws_acquire(&in.loop);
  if (!in.aws) return 1;
  /* credentials (and region) first: the bucket's location depends on it */
  in.pending = 1;
  tt_aws_ready(in.aws, on_ready, &in);
  uv_run(&in.loop, UV_RUN_DEFAULT);
  int any = 0;
  if (!in.failed && !strncmp(cfg->queue_url, "sqs://", 6)) {
    any = 1;
    char url[1200];
    snprintf(url, sizeof url, "%s%screate=1", cfg->queue_url, strchr(cfg->queue_url, '?') ? "&" : "?");
    int rc = tt_queue_open(&in.loop, url, &in.q);
    if (rc) {
      step_done(&in, rc, "queue");
    } else {
      tt_queue_attrs a = {cfg->job_visibility_ms, (int)cfg->max_receives};
      in.pending += 2;
      in.qleft = 2;
      tt_queue_declare(in.q, "jobs", &a, on_declared, &in);
      tt_queue_declare(in.q, "images", &a, on_declared, &in);
    }
  }
  if (!in.failed && !strncmp(cfg->blobs_url, "s3://", 5)) {
    any = 1;
    in.pending++;
    create_bucket(&in, cfg->blobs_url);
  }
  if (!in.failed && !strncmp(cfg->store_url, "dynamodb://", 11)) {
    any = 1;
    in.pending++;
    if (tt_store_dynamodb_table(cfg->store_url, in.table, sizeof in.table)) {
      step_done(&in, TT_EINVAL, "table");
    } else {
      create_table(&in);
    }
  }
  uv_run(&in.loop, UV_RUN_DEFAULT);
  tt_aws_release(in.aws);
  uv_run(&in.loop, UV_RUN_DEFAULT);
  uv_loop_close(&in.loop);
  if (!any && !in.failed) printf("nothing to create: no sqs://, s3:// or dynamodb:// URL given\n");
  return in.failed ? 1 : 0;
}
