/* api.h — the API role: builds the router from the route groups named in
 * cfg->routes (users, images, jobs, web) and serves it on one loop per
 * process until drained. */
#ifndef TINTYPE_API_H
#define TINTYPE_API_H

#include "tintype/config.h"
#include "tintype/router.h"

struct tt_api;
/* Registers the routes of the groups listed in `groups` (comma-separated)
 * for the API context `api` (may be NULL to only validate the list).
 * Unknown group names are an error (TT_EINVAL, with the name in err). */
int tt_api_register(tt_router *r, const char *groups, struct tt_api *api, char *err, size_t errlen);

/* A supervisor child main (see supervisor.h) for the API role. */
int tt_api_child_main(const tt_config *cfg, int listen_fd, int index, void *ud);
/* Checks the API's own settings (--signup, --trusted-proxies) before any
 * child starts: TT_OK, or TT_EINVAL with the reason in err. */
int tt_api_check_config(const tt_config *cfg, char *err, size_t errlen);

/* `tintype submit URL [-o FILE]`: posts a job to cfg->api_url; with
 * cfg->wait or outfile follows it to its end (and downloads the image into
 * outfile). Returns the exit code: 0, 1 (the job or the request failed),
 * 2 (usage). */
int tt_submit_main(const tt_config *cfg, const char *url, const char *outfile);

/* The handler of the web group: embedded files, and the health check. */
void tt_api_web_handler(tt_http_req *req, void *ud);

#endif
