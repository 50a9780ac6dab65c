/* test_options.c — job options: defaults, every field's type and range
 * error naming the field, unknown keys, URL rules, canonical JSON. */
#include <math.h>

#include "tintype/error.h"
#include "tintype/job.h"
#include "tt_test.h"

static tt_config cfg;

static int parse(const char *js, tt_options *o, char *field) {
  json_error_t je;
  json_t *j = json_loads(js, JSON_ALLOW_NUL, &je);
  if (!j) {
    fprintf(stderr, "bad test JSON: %s\n", js);
    return 99;
  }
  char detail[256];
  int rc = tt_options_parse(j, &cfg, o, field, 96, detail, sizeof detail);
  json_decref(j);
  return rc;
}

static void rejects(const char *js, const char *want_field) {
  tt_options o;
  char field[96] = "";
  int rc = parse(js, &o, field);
  if (rc != TT_EINVAL || strcmp(field, want_field))
    fprintf(stderr, "  for %s: rc=%d field=%s (want %s)\n", js, rc, field, want_field);
  CHECK_INT(rc, TT_EINVAL);
  CHECK_STR(field, want_field);
}

/* render links: query pairs -> JSON, as the canonical JSON text (sorted) */
static char *from_query(const char *const *kv, size_t n, int *rc, char *field) {
  const char *names[16], *values[16];
  for (size_t i = 0; i < n; i++) {
    names[i] = kv[2 * i];
    values[i] = kv[2 * i + 1];
  }
  json_t *out = NULL;
  char detail[256];
  field[0] = 0;
  *rc = tt_options_from_query(names, values, n, &out, field, 96, detail, sizeof detail);
  char *s = out ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(out);
  return s;
}

static void query_is(const char *const *kv, size_t n, const char *want) {
  int rc;
  char field[96];
  char *s = from_query(kv, n, &rc, field);
  CHECK_INT(rc, TT_OK);
  CHECK_STR(s ? s : "(null)", want);
  free(s);
}

static void query_rejects(const char *const *kv, size_t n, const char *want_field) {
  int rc;
  char field[96];
  char *s = from_query(kv, n, &rc, field);
  CHECK_INT(rc, TT_EINVAL);
  CHECK_STR(field, want_field);
  CHECK(s == NULL);
  free(s);
}

int main(void) {
  tt_config_defaults(&cfg);
  tt_options o;
  char field[96];
  CHECK_INT(parse("{\"url\":\"http://127.0.0.1:8000/a?b=1\"}", &o, field), TT_OK);
  CHECK_STR(o.url, "http://127.0.0.1:8000/a?b=1");
  CHECK_INT(o.width, 1280);
  CHECK_INT(o.height, 800);
  CHECK_INT(o.format, TT_FMT_PNG);
  CHECK_INT(o.timeout_ms, 30000);
  CHECK_INT(o.quality, 0);

  CHECK_INT(parse("{\"url\":\"HTTPS://Example.COM\",\"viewport\":{\"width\":390,\"height\":844,\"scale\":3,"
                  "\"mobile\":true},\"format\":\"webp\",\"wait_until\":\"networkidle\",\"wait_for\":\"#main\","
                  "\"selector\":\".card\",\"delay_ms\":250,\"timeout_ms\":5000,\"dark_mode\":true}",
                  &o, field),
            TT_OK);
  CHECK_STR(o.url, "https://Example.COM/"); /* scheme lowercased, path added by libcurl */
  CHECK_INT(o.width, 390);
  CHECK(o.scale == 3.0);
  CHECK_INT(o.mobile, 1);
  CHECK_INT(o.format, TT_FMT_WEBP);
  CHECK_INT(o.quality, 80);
  CHECK_INT(o.wait_until, TT_WAIT_NETWORKIDLE);
  CHECK_STR(o.wait_for, "#main");
  CHECK_STR(o.selector, ".card");
  CHECK_INT(o.dark_mode, 1);

  /* canonical JSON parses back to the same options */
  json_t *j = tt_options_to_json(&o);
  char detail[128];
  tt_options o2;
  CHECK_INT(tt_options_parse(j, &cfg, &o2, field, sizeof field, detail, sizeof detail), TT_OK);
  CHECK(memcmp(&o, &o2, sizeof o) == 0);
  json_decref(j);

  rejects("{}", "url");
  rejects("[1]", "");
  rejects("{\"url\":5}", "url");
  rejects("{\"url\":\"\"}", "url");
  rejects("{\"url\":\"ftp://example.com/\"}", "url");
  rejects("{\"url\":\"file:///etc/passwd\"}", "url");
  rejects("{\"url\":\"javascript:alert(1)\"}", "url");
  rejects("{\"url\":\"not a url\"}", "url");
  rejects("{\"url\":\"http://\"}", "url");
  rejects("{\"url\":\"http://a\\u0000b/\"}", "url");
  /* an empty authority: libcurl would read these as http://x/ (issue 16 item 10) */
  rejects("{\"url\":\"http:///x\"}", "url");
  rejects("{\"url\":\"HTTPS:///x/y\"}", "url");
  rejects("{\"url\":\"http:/x\"}", "url");
  rejects("{\"url\":\"http:\\\\\\\\x/\"}", "url");
  rejects("{\"url\":\"http://?x\"}", "url");
  rejects("{\"url\":\"http://#x\"}", "url");
  CHECK_INT(parse("{\"url\":\"http://x\"}", &o, field), TT_OK);
  CHECK_STR(o.url, "http://x/");
  rejects("{\"url\":\"http://x/\",\"viewport\":{\"width\":0}}", "viewport.width");
  rejects("{\"url\":\"http://x/\",\"viewport\":{\"width\":100000}}", "viewport.width");
  rejects("{\"url\":\"http://x/\",\"viewport\":{\"height\":\"800\"}}", "viewport.height");
  rejects("{\"url\":\"http://x/\",\"viewport\":{\"scale\":9}}", "viewport.scale");
  rejects("{\"url\":\"http://x/\",\"viewport\":{\"mobile\":1}}", "viewport.mobile");
  rejects("{\"url\":\"http://x/\",\"viewport\":{\"depth\":1}}", "viewport.depth");
  rejects("{\"url\":\"http://x/\",\"viewport\":[]}", "viewport");
  rejects("{\"url\":\"http://x/\",\"full_page\":\"yes\"}", "full_page");
  rejects("{\"url\":\"http://x/\",\"format\":\"gif\"}", "format");
  rejects("{\"url\":\"http://x/\",\"format\":\"jpeg\",\"quality\":101}", "quality");
  rejects("{\"url\":\"http://x/\",\"quality\":50}", "quality");
  rejects("{\"url\":\"http://x/\",\"wait_until\":\"idle\"}", "wait_until");
  rejects("{\"url\":\"http://x/\",\"wait_for\":\"\"}", "wait_for");
  rejects("{\"url\":\"http://x/\",\"selector\":7}", "selector");
  rejects("{\"url\":\"http://x/\",\"delay_ms\":-1}", "delay_ms");
  rejects("{\"url\":\"http://x/\",\"delay_ms\":99999999999999}", "delay_ms");
  rejects("{\"url\":\"http://x/\",\"timeout_ms\":10}", "timeout_ms");
  rejects("{\"url\":\"http://x/\",\"timeout_ms\":1.5}", "timeout_ms");
  rejects("{\"url\":\"http://x/\",\"dark_mode\":null}", "dark_mode");
  /* isolation: only ever stricter; optimize_for_speed: png only */
  rejects("{\"url\":\"http://x/\",\"isolation\":\"none\"}", "isolation");
  rejects("{\"url\":\"http://x/\",\"isolation\":true}", "isolation");
  rejects("{\"url\":\"http://x/\",\"optimize_for_speed\":1}", "optimize_for_speed");
  rejects("{\"url\":\"http://x/\",\"format\":\"jpeg\",\"optimize_for_speed\":true}", "optimize_for_speed");
  CHECK_INT(parse("{\"url\":\"http://x/\",\"isolation\":\"job\",\"optimize_for_speed\":true}", &o, field), TT_OK);
  CHECK_INT(o.isolation_job, 1);
  CHECK_INT(o.optimize_for_speed, 1);
  {
    json_t *cj = tt_options_to_json(&o);
    CHECK_STR(json_string_value(json_object_get(cj, "isolation")), "job");
    CHECK(json_is_true(json_object_get(cj, "optimize_for_speed")));
    json_decref(cj);
  }
  CHECK_INT(parse("{\"url\":\"http://x/\",\"isolation\":\"owner\"}", &o, field), TT_OK);
  CHECK_INT(o.isolation_job, 0);
  CHECK_INT(o.optimize_for_speed, 0);
  rejects("{\"url\":\"http://x/\",\"fullpage\":true}", "fullpage");
  rejects("{\"url\":\"http://x/\",\"full_page\":true,\"selector\":\"a\"}", "selector");
  /* cache_ttl: 0..max-cache-ttl, in the canonical JSON only when set */
  rejects("{\"url\":\"http://x/\",\"cache_ttl\":-1}", "cache_ttl");
  rejects("{\"url\":\"http://x/\",\"cache_ttl\":86401}", "cache_ttl");
  rejects("{\"url\":\"http://x/\",\"cache_ttl\":\"60\"}", "cache_ttl");
  CHECK_INT(parse("{\"url\":\"http://x/\",\"cache_ttl\":86400}", &o, field), TT_OK);
  CHECK_INT(o.cache_ttl, 86400);
  {
    /* the cache id: the same for the same owner and options whatever the
     * cache_ttl, different for another owner or any other option */
    const char *u1 = "0190a5c4-7b1e-7c3a-9f00-2b5d6c7e8f90", *u2 = "0190a5c4-7b1e-7c3a-9f00-2b5d6c7e8f91";
    char a[TT_ID_SIZE], b[TT_ID_SIZE], c[TT_ID_SIZE], d[TT_ID_SIZE];
    tt_options oc;
    CHECK_INT(parse("{\"url\":\"http://x/\",\"cache_ttl\":60}", &o, field), TT_OK);
    CHECK_INT(parse("{\"cache_ttl\":5,\"url\":\"http://x/\"}", &oc, field), TT_OK);
    CHECK_INT(tt_job_cache_id(u1, &o, a), TT_OK);
    CHECK_INT(tt_job_cache_id(u1, &oc, b), TT_OK);
    CHECK_STR(a, b);
    CHECK(tt_id_valid(a));
    CHECK(a[14] == '8'); /* UUID version 8 */
    CHECK_INT(tt_job_cache_id(u2, &o, c), TT_OK);
    CHECK(strcmp(a, c) != 0);
    oc.dark_mode = 1;
    CHECK_INT(tt_job_cache_id(u1, &oc, d), TT_OK);
    CHECK(strcmp(a, d) != 0);
  }
  /* format pdf: paper, lengths with units, margins, ranges; canonical JSON
   * reads back to the same options; every field's error names it */
  CHECK_INT(parse("{\"url\":\"http://x/\",\"format\":\"pdf\"}", &o, field), TT_OK);
  CHECK_INT(o.format, TT_FMT_PDF);
  CHECK_INT(o.quality, 0);
  CHECK_STR(o.pdf.paper, "Letter");
  CHECK(o.pdf.width == 8.5 && o.pdf.height == 11 && o.pdf.margin[0] == 0.4 && o.pdf.scale == 1);
  CHECK_STR(tt_format_mime(o.format), "application/pdf");
  CHECK_STR(tt_format_name(o.format), "pdf");
  {
    const char *pdfs[] = {
        "{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"paper\":\"a4\",\"landscape\":true,\"margin\":\"1cm\","
        "\"print_background\":true,\"page_ranges\":\"1-3, 5\",\"scale\":0.5,\"media\":\"screen\"}}",
        "{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"width\":\"210mm\",\"height\":1122.5,"
        "\"margin\":{\"top\":\"0in\",\"left\":\"2.54cm\"}}}",
    };
    for (int i = 0; i < 2; i++) {
      CHECK_INT(parse(pdfs[i], &o, field), TT_OK);
      json_t *pj = tt_options_to_json(&o);
      tt_options back;
      CHECK_INT(tt_options_parse(pj, &cfg, &back, field, sizeof field, detail, sizeof detail), TT_OK);
      CHECK(memcmp(&o, &back, sizeof o) == 0);
      json_decref(pj);
    }
    CHECK_INT(parse(pdfs[0], &o, field), TT_OK);
    CHECK_STR(o.pdf.paper, "A4");
    CHECK(fabs(o.pdf.width - 210 / 25.4) < 1e-4 && fabs(o.pdf.margin[3] - 1 / 2.54) < 1e-4);
    CHECK_INT(o.pdf.landscape, 1);
    CHECK_INT(o.pdf.media_screen, 1);
    CHECK_STR(o.pdf.page_ranges, "1-3, 5");
    CHECK_INT(parse(pdfs[1], &o, field), TT_OK);
    CHECK_STR(o.pdf.paper, "");
    CHECK(fabs(o.pdf.height - 1122.5 / 96) < 1e-4 && o.pdf.margin[0] == 0 && fabs(o.pdf.margin[3] - 1) < 1e-9);
    CHECK(o.pdf.margin[1] == 0.4); /* the sides not named keep the default */
    /* the cache id tells papers apart */
    char a[TT_ID_SIZE], b[TT_ID_SIZE];
    tt_options oa, ob;
    CHECK_INT(parse("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"paper\":\"A4\"}}", &oa, field), TT_OK);
    CHECK_INT(parse("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"paper\":\"Letter\"}}", &ob, field), TT_OK);
    CHECK_INT(tt_job_cache_id("u", &oa, a), TT_OK);
    CHECK_INT(tt_job_cache_id("u", &ob, b), TT_OK);
    CHECK(strcmp(a, b) != 0);
  }
  rejects("{\"url\":\"http://x/\",\"pdf\":{}}", "pdf");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":[]}", "pdf");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"quality\":50}", "quality");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"full_page\":true}", "full_page");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"selector\":\"#a\"}", "selector");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"paper\":\"B5\"}}", "pdf.paper");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"paper\":\"A4\",\"width\":\"1in\"}}", "pdf.width");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"width\":\"5in\"}}", "pdf.height");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"width\":\"5ft\",\"height\":\"5in\"}}", "pdf.width");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"width\":\"0.5in\",\"height\":\"5in\"}}", "pdf.width");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"width\":\"5in\",\"height\":\"101in\"}}", "pdf.height");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"landscape\":1}}", "pdf.landscape");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"margin\":\"-1in\"}}", "pdf.margin");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"margin\":\"6in\"}}", "pdf.margin");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"margin\":{\"middle\":1}}}", "pdf.margin.middle");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"margin\":{\"top\":true}}}", "pdf.margin.top");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"print_background\":\"yes\"}}", "pdf.print_background");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"page_ranges\":\"3-1\"}}", "pdf.page_ranges");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"page_ranges\":\"0\"}}", "pdf.page_ranges");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"page_ranges\":\"1,,2\"}}", "pdf.page_ranges");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"page_ranges\":\"\"}}", "pdf.page_ranges");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"scale\":2.5}}", "pdf.scale");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"scale\":0.05}}", "pdf.scale");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"media\":\"tv\"}}", "pdf.media");
  rejects("{\"url\":\"http://x/\",\"format\":\"pdf\",\"pdf\":{\"colour\":1}}", "pdf.colour");
  /* page controls: each in the canonical JSON (and so the cache key), each
   * bad value naming its field */
  {
    const char *all = "{\"url\":\"http://x/\",\"css\":\"a{b:c}\",\"js\":\"1\",\"js_timeout_ms\":1000,"
                      "\"hide_selectors\":[\"#a\",\".b\"],\"click_selectors\":[\"#c\"],\"scroll_to\":\"#d\","
                      "\"user_agent\":\"UA/1\",\"locale\":\"zh-Hant-TW\",\"timezone\":\"UTC\"}";
    CHECK_INT(parse(all, &o, field), TT_OK);
    CHECK_INT(o.nhide, 2);
    CHECK_STR(o.hide_selectors + 3, ".b");
    CHECK_INT(o.js_timeout_ms, 1000);
    json_t *cj = tt_options_to_json(&o);
    tt_options back;
    CHECK_INT(tt_options_parse(cj, &cfg, &back, field, sizeof field, detail, sizeof detail), TT_OK);
    CHECK(memcmp(&o, &back, sizeof o) == 0);
    json_decref(cj);
    char a[TT_ID_SIZE], b[TT_ID_SIZE];
    CHECK_INT(tt_job_cache_id("u", &o, a), TT_OK);
    snprintf(back.user_agent, sizeof back.user_agent, "UA/2");
    CHECK_INT(tt_job_cache_id("u", &back, b), TT_OK);
    CHECK(strcmp(a, b) != 0);
    CHECK_INT(parse("{\"url\":\"http://x/\",\"js\":\"1\"}", &o, field), TT_OK);
    CHECK_INT(o.js_timeout_ms, 5000); /* max-js-ms */
  }
  {
    const char *net = "{\"url\":\"http://x/\",\"headers\":{\"X-B\":\"2\",\"X-A\":\"1\"},"
                      "\"cookies\":[{\"name\":\"a\",\"value\":\"b\",\"same_site\":\"Lax\"}],"
                      "\"basic_auth\":{\"username\":\"u\",\"password\":\"\"},\"block_resources\":[\"font\",\"image\"],"
                      "\"block_urls\":[\"*.woff2\"]}";
    CHECK_INT(parse(net, &o, field), TT_OK);
    CHECK_STR(o.headers_json, "{\"X-A\":\"1\",\"X-B\":\"2\"}");
    CHECK_INT(o.nheaders, 2);
    CHECK_STR(o.auth_user, "u");
    CHECK_INT(o.nblock_urls, 1);
    json_t *nj = tt_options_to_json(&o);
    tt_options nb;
    CHECK_INT(tt_options_parse(nj, &cfg, &nb, field, sizeof field, detail, sizeof detail), TT_OK);
    CHECK(memcmp(&o, &nb, sizeof o) == 0);
    json_decref(nj);
  }
  rejects("{\"url\":\"http://x/\",\"headers\":{\"host\":\"a\"}}", "headers.host");
  rejects("{\"url\":\"http://x/\",\"headers\":{\"Transfer-Encoding\":\"chunked\"}}", "headers.Transfer-Encoding");
  rejects("{\"url\":\"http://x/\",\"headers\":{\"proxy-authorization\":\"a\"}}", "headers.proxy-authorization");
  rejects("{\"url\":\"http://x/\",\"headers\":{\"X\":\"a\\nb\"}}", "headers.X");
  rejects("{\"url\":\"http://x/\",\"headers\":{\"X\":1}}", "headers.X");
  rejects("{\"url\":\"http://x/\",\"headers\":[]}", "headers");
  rejects("{\"url\":\"http://x/\",\"cookies\":[{\"value\":\"b\"}]}", "cookies[0]");
  rejects("{\"url\":\"http://x/\",\"cookies\":[{\"name\":\"a b\",\"value\":\"b\"}]}", "cookies[0].name");
  rejects("{\"url\":\"http://x/\",\"cookies\":[{\"name\":\"a\",\"value\":\"b\",\"path\":\"x\"}]}", "cookies[0].path");
  rejects("{\"url\":\"http://x/\",\"cookies\":[{\"name\":\"a\",\"value\":\"b\",\"domain\":\"x\"}]}", "cookies[0].domain");
  rejects("{\"url\":\"http://x/\",\"basic_auth\":{\"password\":\"p\"}}", "basic_auth.username");
  rejects("{\"url\":\"http://x/\",\"basic_auth\":{\"username\":\"u\",\"password\":\"p\",\"realm\":\"r\"}}", "basic_auth.realm");
  rejects("{\"url\":\"http://x/\",\"block_resources\":[\"document\"]}", "block_resources[0]");
  rejects("{\"url\":\"http://x/\",\"block_urls\":[1]}", "block_urls[0]");
  rejects("{\"url\":\"http://x/\",\"css\":\"\"}", "css");
  rejects("{\"url\":\"http://x/\",\"js\":7}", "js");
  rejects("{\"url\":\"http://x/\",\"js_timeout_ms\":1000}", "js_timeout_ms");
  rejects("{\"url\":\"http://x/\",\"js\":\"1\",\"js_timeout_ms\":5001}", "js_timeout_ms");
  rejects("{\"url\":\"http://x/\",\"hide_selectors\":\"#a\"}", "hide_selectors");
  rejects("{\"url\":\"http://x/\",\"hide_selectors\":[\"#a\",\"\"]}", "hide_selectors[1]");
  rejects("{\"url\":\"http://x/\",\"click_selectors\":[1]}", "click_selectors[0]");
  rejects("{\"url\":\"http://x/\",\"click_selectors\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
          "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}", "click_selectors");
  rejects("{\"url\":\"http://x/\",\"scroll_to\":\"\"}", "scroll_to");
  rejects("{\"url\":\"http://x/\",\"user_agent\":\"a\\nb\"}", "user_agent");
  rejects("{\"url\":\"http://x/\",\"locale\":\"de_DE\"}", "locale");
  rejects("{\"url\":\"http://x/\",\"locale\":\"x\"}", "locale");
  rejects("{\"url\":\"http://x/\",\"locale\":\"de-toolongsubtag\"}", "locale");
  rejects("{\"url\":\"http://x/\",\"timezone\":\"Europe/Nowhere\"}", "timezone");
  rejects("{\"url\":\"http://x/\",\"timezone\":\"../etc/passwd\"}", "timezone");
  rejects("{\"url\":\"http://x/\",\"timezone\":\"/etc/passwd\"}", "timezone");
  {
    /* render links: the query -> JSON adapter */
    const char *a[] = {"url", "http://x/?a=1", "width", "800", "height", "600", "scale", "1.5", "mobile", "true"};
    query_is(a, 5, "{\"url\":\"http://x/?a=1\",\"viewport\":{\"height\":600,\"mobile\":true,\"scale\":1.5,\"width\":800}}");
    const char *b[] = {"viewport.width", "300", "full_page", "false", "wait_for", "123", "hide_selectors", "[\"#a\"]",
                       "pdf.landscape", "true", "user_agent", "true"};
    query_is(b, 6, "{\"full_page\":false,\"hide_selectors\":[\"#a\"],\"pdf\":{\"landscape\":true},"
                   "\"user_agent\":\"true\",\"viewport\":{\"width\":300},\"wait_for\":\"123\"}");
    const char *c[] = {"delay_ms", "-5", "quality", "8.5e1", "dark_mode", "yes"};
    query_is(c, 3, "{\"dark_mode\":\"yes\",\"delay_ms\":-5,\"quality\":\"8.5e1\"}");
    const char *d1[] = {"width", "1", "viewport.width", "2"};
    query_rejects(d1, 2, "viewport.width");
    const char *d2[] = {"url", "http://x/", "url", "http://y/"};
    query_rejects(d2, 2, "url");
    const char *d3[] = {"viewport", "3", "width", "2"};
    query_rejects(d3, 2, "viewport.width");
    const char *d4[] = {"headers", "{bad"};
    query_rejects(d4, 1, "headers");
    const char *d5[] = {"a..b", "1"};
    query_rejects(d5, 1, "a..b");
    const char *d6[] = {"timeout_ms", "99999999999999999999999"};
    query_rejects(d6, 1, "timeout_ms");
    /* what it makes, tt_options_parse validates: width=0 names viewport.width */
    const char *e[] = {"url", "http://x/", "width", "0"};
    int rc;
    char f[96];
    char *js = from_query(e, 2, &rc, f);
    CHECK_INT(rc, TT_OK);
    rejects(js ? js : "{}", "viewport.width");
    free(js);
  }
  /* a URL over the configured length */
  cfg.max_job_url_bytes = 32;
  rejects("{\"url\":\"http://example.com/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "url");
  TT_TEST_END();
}
