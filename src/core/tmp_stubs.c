/* tmp_stubs.c — placeholders while the supervisor and API role land. */
#include <stdio.h>
#include "tintype/api.h"
#include "tintype/supervisor.h"
int tt_supervisor_run(const tt_config *cfg, const tt_supervisor_spec *spec) { (void)cfg; (void)spec; fprintf(stderr, "not built\n"); return 3; }
int tt_api_child_main(const tt_config *cfg, int fd, int i, void *ud) { (void)cfg; (void)fd; (void)i; (void)ud; return 3; }
int tt_cpu_count(void) { return 1; }
