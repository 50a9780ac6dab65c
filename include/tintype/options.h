/* options.h — the job options moved into the job module: tintype/job.h.
 * Kept so code written against the old name still builds. */
#include "tintype/job.h"
