/* main.c — the tintype command line: one binary, every role (DESIGN §1).
 *
 * Parses the subcommand, loads settings from defaults, TINTYPE_* variables
 * and flags (include/tintype/config.h), and hands over to the role:
 * the supervisor for `api` and `up`; commands whose engines are not built
 * yet say so and exit 3. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tintype/api.h"
#include "tintype/aws.h"
#include "tintype/config.h"
#include "tintype/error.h"
#include "tintype/log.h"
#include "tintype/metrics.h"
#include "tintype/render.h"
#include "tintype/supervisor.h"
#include "tintype/worker.h"

#define TT_VERSION "0.1.0"
#define EXIT_USAGE 2

typedef struct {
  const char *name;
  unsigned mask;
  const char *args;
  const char *summary;
} command;

static const command commands[] = {
    {"up", TT_CMD_UP, "", "API and workers on this machine, embedded backends under --data"},
    {"api", TT_CMD_API, "", "HTTP API processes only"},
    {"worker", TT_CMD_WORKER, "", "job consumer processes only"},
    {"shot", TT_CMD_SHOT, "URL -o FILE", "render one URL to a file: no server, no queue"},
    {"submit", TT_CMD_SUBMIT, "URL [-o FILE]", "post a job to a running API; with --wait or -o, follow it to its result"},
    {"aws", TT_CMD_AWS, "init", "create the queues, bucket and table the --queue/--blobs/--store URLs name"},
};

static void usage(FILE *out) {
  fprintf(out,
          "tintype " TT_VERSION " — screenshots and image processing over HTTP\n\n"
          "Usage: tintype COMMAND [OPTIONS]\n\nCommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "  %-8s %s\n\nRun 'tintype COMMAND --help' for a command's options.\n"
          "Every option also has a TINTYPE_* environment variable.\n",
          "version", "print the version");
}

static void command_usage(const command *c) {
  printf("Usage: tintype %s %s%s[OPTIONS]\n\n%s\n\n", c->name, c->args, c->args[0] ? " " : "", c->summary);
  if (c->mask == TT_CMD_SHOT) {
    printf("  -o FILE                  where to write the image (.png, .jpg or .webp sets the format)\n\n");
    tt_shot_usage(stdout);
  }
  if (c->mask == TT_CMD_SUBMIT)
    printf("  -o FILE                  wait for the job and download its image (.png, .jpg or .webp sets the\n"
           "                           format when --job does not)\n\n");
  tt_config_usage(stdout, c->mask);
}

/* `tintype api` (workers == 0) and `tintype up` (api + worker processes) */
static int serve_api(const tt_config *cfg, const char *role, int workers) {
  int n = cfg->processes > 0 ? (int)cfg->processes : tt_cpu_count();
  if (tt_metrics_init(n + workers)) fprintf(stderr, "tintype %s: no shared memory for metrics\n", role);
  /* a bad route group is a usage error, found before any child is forked */
  char err[256];
  tt_router *r = tt_router_new();
  int bad = !r || tt_api_register(r, cfg->routes, NULL, err, sizeof err);
  tt_router_free(r);
  if (bad) {
    fprintf(stderr, "tintype %s: --routes: %s\n", role, r ? err : "out of memory");
    return EXIT_USAGE;
  }
  if (tt_api_check_config(cfg, err, sizeof err)) {
    fprintf(stderr, "tintype %s: %s\n", role, err);
    return EXIT_USAGE;
  }
  tt_supervisor_spec specs[2] = {
      {.role = "api", .processes = n, .listen = 1, .child = tt_api_child_main},
      {.role = "worker", .processes = workers, .listen = 0, .child = tt_worker_child_main},
  };
  return tt_supervisor_run_roles(cfg, specs, workers > 0 ? 2 : 1);
}

/* `tintype worker`: job consumers only */
static int serve_worker(const tt_config *cfg) {
  int n = cfg->processes > 0 ? (int)cfg->processes : tt_cpu_count();
  if (tt_metrics_init(n)) fprintf(stderr, "tintype worker: no shared memory for metrics\n");
  tt_supervisor_spec spec = {.role = "worker", .processes = n, .listen = 0, .child = tt_worker_child_main};
  return tt_supervisor_run(cfg, &spec);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(name, "version") || !strcmp(name, "--version")) {
    printf("tintype %s\n", TT_VERSION);
    return 0;
  }
  const command *cmd = NULL;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(commands[i].name, name)) cmd = &commands[i];
  if (!cmd) {
    fprintf(stderr, "tintype: unknown command '%s'\n\n", name);
    usage(stderr);
    return EXIT_USAGE;
  }

  tt_config cfg;
  tt_config_defaults(&cfg);
  char err[512];
  const char *pos[4];
  int npos = 4, help = 0;
  /* shot takes -o FILE: turn it into a positional pair before parsing */
  char **args = argv + 2;
  int nargs = argc - 2;
  const char *outfile = NULL;
  char **rest = calloc((size_t)nargs + 1, sizeof *rest);
  int nrest = 0;
  if (!rest) return 1;
  json_t *shot_opts = json_object();
  for (int i = 0; i < nargs; i++) {
    if ((cmd->mask == TT_CMD_SHOT || cmd->mask == TT_CMD_SUBMIT) && !strcmp(args[i], "-o") && i + 1 < nargs) {
      outfile = args[++i];
      continue;
    }
    /* submit: a bare --wait (last, or before something that is not a wait
     * value, like the URL) means --wait=true */
    if (cmd->mask == TT_CMD_SUBMIT && !strcmp(args[i], "--wait")) {
      int64_t w;
      if (i + 1 < nargs && !tt_config_parse_wait(args[i + 1], &w)) {
        rest[nrest++] = args[i++];
        rest[nrest++] = args[i];
      } else {
        rest[nrest++] = "--wait=true";
      }
      continue;
    }
    if (cmd->mask == TT_CMD_SHOT) {
      int took = tt_shot_flag(shot_opts, nargs, args, &i, err, sizeof err);
      if (took < 0) {
        fprintf(stderr, "tintype shot: %s\n", err);
        free(rest);
        json_decref(shot_opts);
        return EXIT_USAGE;
      }
      if (took) continue;
    }
    rest[nrest++] = args[i];
  }
  if (tt_config_from_env(&cfg, cmd->mask, err, sizeof err) ||
      tt_config_from_args(&cfg, cmd->mask, nrest, rest, pos, &npos, &help, err, sizeof err)) {
    fprintf(stderr, "tintype %s: %s\n", cmd->name, err);
    free(rest);
    json_decref(shot_opts);
    return EXIT_USAGE;
  }
  free(rest);
  if (cmd->mask != TT_CMD_SHOT || help) {
    json_decref(shot_opts);
    shot_opts = NULL;
  }
  if (help) {
    command_usage(cmd);
    return 0;
  }
  tt_config_finish(&cfg);
  /* shot prints its result on stdout: its logs go to stderr */
  tt_log_init(cmd->mask == TT_CMD_SHOT ? STDERR_FILENO : STDOUT_FILENO,
              (tt_log_level)tt_log_level_parse(cfg.log_level), cmd->name);

  switch (cmd->mask) {
    case TT_CMD_API:
    case TT_CMD_UP:
      if (npos) {
        fprintf(stderr, "tintype %s: unexpected argument '%s'\n", cmd->name, pos[0]);
        return EXIT_USAGE;
      }
      return serve_api(&cfg, cmd->name, cmd->mask == TT_CMD_UP ? (int)cfg.worker_processes : 0);
    case TT_CMD_SHOT:
      if (npos != 1 || !outfile || !*outfile) {
        fprintf(stderr, "tintype shot: usage: tintype shot URL -o FILE [options]\n");
        json_decref(shot_opts);
        return EXIT_USAGE;
      }
      {
        int code = tt_shot_main(&cfg, pos[0], shot_opts, outfile);
        json_decref(shot_opts);
        return code;
      }
    case TT_CMD_SUBMIT:
      if (npos != 1) {
        fprintf(stderr, "tintype submit: usage: tintype submit URL\n");
        return EXIT_USAGE;
      }
      return tt_submit_main(&cfg, pos[0], outfile);
    case TT_CMD_AWS:
      if (npos != 1 || strcmp(pos[0], "init")) {
        fprintf(stderr, "tintype aws: usage: tintype aws init [--store URL] [--queue URL] [--blobs URL]\n");
        return EXIT_USAGE;
      }
      return tt_aws_init_main(&cfg);
    case TT_CMD_WORKER:
      if (npos) {
        fprintf(stderr, "tintype worker: unexpected argument '%s'\n", pos[0]);
        return EXIT_USAGE;
      }
      return serve_worker(&cfg);
  }
  return 1;
}
