/* neterr.c — Chromium's network error codes in words.
 *
 * Page.navigate answers a failed navigation with an errorText such as
 * "net::ERR_SSL_PROTOCOL_ERROR". render.c puts that sentence into a job's
 * error, which a person reads on the web page, in the API's job record and
 * from the CLI; this table turns the codes a page address can cause into
 * what went wrong, keeping the code in parentheses for a search. The names
 * are Chromium's net/base/net_error_list.h; codes not listed here keep a
 * generic sentence. */
#include <stdio.h>
#include <string.h>

#include "tintype/render.h"

static const struct {
  const char *code, *words;
} words[] = {
    {"ERR_SSL_PROTOCOL_ERROR",
     "the server at that address does not speak HTTPS: try http://"},
    {"ERR_SSL_VERSION_OR_CIPHER_MISMATCH", "the server's HTTPS is too old or misconfigured for the browser"},
    {"ERR_CERT_AUTHORITY_INVALID", "the server's HTTPS certificate is not signed by a trusted authority"},
    {"ERR_CERT_COMMON_NAME_INVALID", "the server's HTTPS certificate is for another name"},
    {"ERR_CERT_DATE_INVALID", "the server's HTTPS certificate has expired or is not valid yet"},
    {"ERR_CERT_INVALID", "the server's HTTPS certificate is not valid"},
    {"ERR_BAD_SSL_CLIENT_AUTH_CERT", "the server asked for a client certificate"},
    {"ERR_CONNECTION_REFUSED", "nothing is listening at that address and port"},
    {"ERR_CONNECTION_RESET", "the server cut the connection"},
    {"ERR_CONNECTION_CLOSED", "the server closed the connection without an answer"},
    {"ERR_CONNECTION_FAILED", "the connection to the server failed"},
    {"ERR_CONNECTION_TIMED_OUT", "the server did not answer in time"},
    {"ERR_TIMED_OUT", "the server did not answer in time"},
    {"ERR_EMPTY_RESPONSE", "the server closed the connection without sending anything"},
    {"ERR_INVALID_RESPONSE", "the server's answer was not valid HTTP"},
    {"ERR_INVALID_HTTP_RESPONSE", "the server's answer was not valid HTTP"},
    {"ERR_RESPONSE_HEADERS_TOO_BIG", "the server's answer had too many or too large headers"},
    {"ERR_CONTENT_DECODING_FAILED", "the server's compressed answer could not be decoded"},
    {"ERR_HTTP2_PROTOCOL_ERROR", "the server broke the HTTP/2 protocol"},
    {"ERR_TOO_MANY_REDIRECTS", "the page redirects in a loop"},
    {"ERR_UNSAFE_REDIRECT", "the page redirects to an address a browser may not follow"},
    {"ERR_NAME_NOT_RESOLVED", "the host name does not exist (DNS)"},
    {"ERR_NAME_RESOLUTION_FAILED", "the host name could not be looked up (DNS)"},
    {"ERR_ADDRESS_UNREACHABLE", "the address cannot be reached from here"},
    {"ERR_ADDRESS_INVALID", "the address is not valid"},
    {"ERR_INTERNET_DISCONNECTED", "the worker has no network"},
    {"ERR_NETWORK_CHANGED", "the worker's network changed during the load"},
    {"ERR_UNSAFE_PORT", "browsers refuse that port (it belongs to another protocol)"},
    {"ERR_INVALID_URL", "the address is not a valid URL"},
    {"ERR_DISALLOWED_URL_SCHEME", "the address's scheme cannot be opened"},
    {"ERR_UNKNOWN_URL_SCHEME", "the address's scheme cannot be opened"},
    {"ERR_ABORTED", "the load was stopped (the server sent a download or nothing to show)"},
    {"ERR_BLOCKED_BY_RESPONSE", "the server forbids showing this page here"},
    {"ERR_BLOCKED_BY_CLIENT", "the page was blocked"},
    {"ERR_TUNNEL_CONNECTION_FAILED", "the connection to the server could not be opened"},
    {"ERR_PROXY_CONNECTION_FAILED", "the connection to the server could not be opened"},
    {"ERR_FILE_NOT_FOUND", "there is no such file"},
    {"ERR_HTTP_RESPONSE_CODE_FAILURE", "the server answered with an error and no page"},
};

void tt_render_net_error_words(const char *error_text, char *out, size_t n) {
  const char *code = error_text && !strncmp(error_text, "net::", 5) ? error_text + 5 : NULL;
  if (!code) {
    snprintf(out, n, "%s", error_text && *error_text ? error_text : "a network error");
    return;
  }
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (!strcmp(code, words[i].code)) {
      snprintf(out, n, "%s (%s)", words[i].words, error_text);
      return;
    }
  snprintf(out, n, "a network error (%s)", error_text);
}
