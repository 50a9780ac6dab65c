/* test_job.c — the job domain's states and messages (include/tintype/job.h):
 * names round-trip, final states, and the message the API sends is the one
 * the worker reads (the options are test_options.c). */
#include <string.h>

#include "tintype/error.h"
#include "tintype/job.h"
#include "tt_test.h"

static void case_states(void) {
  for (int s = 0; s < TT_JOB_NSTATES; s++) CHECK_INT(tt_job_state_of(tt_job_state_name(s)), s);
  for (int s = 0; s < TT_IMAGE_NSTATES; s++)
    CHECK_INT(tt_image_state_of(tt_image_state_name(s)), s);
  CHECK_STR(tt_job_state_name(TT_JOB_QUEUED), "queued");
  CHECK_STR(tt_image_state_name(TT_IMAGE_PROCESSED), "processed");
  CHECK_INT(tt_job_state_of("Queued"), -1);
  CHECK_INT(tt_job_state_of(NULL), -1);
  CHECK(tt_job_state_final("succeeded") && tt_job_state_final("failed") &&
        tt_job_state_final("canceled"));
  CHECK(!tt_job_state_final("queued") && !tt_job_state_final("running") && !tt_job_state_final(NULL));
}

static void case_messages(void) {
  char id[TT_ID_SIZE], back[TT_ID_SIZE], msg[TT_JOB_MSG_MAX];
  tt_id_new(id);
  int n = tt_job_message(msg, id);
  CHECK(n > 0);
  CHECK_INT(tt_job_message_parse(msg, (size_t)n, back), TT_OK);
  CHECK_STR(back, id);
  CHECK_INT(tt_image_message_parse(msg, (size_t)n, back), TT_EINVAL); /* a job is no image */
  n = tt_image_message(msg, id);
  CHECK_INT(tt_image_message_parse(msg, (size_t)n, back), TT_OK);
  CHECK_INT(tt_job_message_parse("not json", 8, back), TT_EINVAL);
  CHECK_INT(tt_job_message_parse("{\"job\":7}", 9, back), TT_EINVAL);
}

/* a job a worker preempted is sent again naming how often: the same id for
 * the worker, the count for its bound; the API's message counts 0 */
static void case_requeued(void) {
  char id[TT_ID_SIZE], back[TT_ID_SIZE], msg[TT_JOB_MSG_MAX];
  tt_id_new(id);
  int n = tt_job_message(msg, id);
  CHECK_INT(tt_job_message_preempted(msg, (size_t)n), 0);
  n = tt_job_message_requeued(msg, id, 3);
  CHECK(n > 0 && n < TT_JOB_MSG_MAX);
  CHECK_INT(tt_job_message_parse(msg, (size_t)n, back), TT_OK);
  CHECK_STR(back, id);
  CHECK_INT(tt_job_message_preempted(msg, (size_t)n), 3);
  const char *neg = "{\"job\":\"x\",\"preempted\":-4}", *str = "{\"job\":\"x\",\"preempted\":\"9\"}";
  CHECK_INT(tt_job_message_preempted(neg, strlen(neg)), 0);
  CHECK_INT(tt_job_message_preempted(str, strlen(str)), 0);
  CHECK_INT(tt_job_message_preempted("garbage", 7), 0);
}

static const tt_case cases[] = {
    {"states", case_states, 0},
    {"messages", case_messages, 0},
    {"requeued", case_requeued, 0},
};

int main(int argc, char **argv) {
  tt_run_cases(cases, sizeof cases / sizeof cases[0], argc, argv);
  TT_TEST_END();
}
