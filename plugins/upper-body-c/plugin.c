// upper-body-c: a Proxy-Wasm plugin in C against the raw ABI (no SDK), built with clang and
// wasi-libc as a WASI reactor. With request header `x-c: upper`, it upper-cases the response
// body (buffered until end of stream) and counts it in the metric c_plugin_bodies_total.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

enum { MAP_REQUEST_HEADERS = 0, MAP_RESPONSE_HEADERS = 2 };
enum { BUFFER_RESPONSE_BODY = 1, BUFFER_PLUGIN_CONFIGURATION = 7 };
enum { LOG_INFO = 2 };
enum { CONTINUE = 0, PAUSE = 1 };
enum { METRIC_COUNTER = 0 };

IMPORT(proxy_log) uint32_t proxy_log(uint32_t level, const char *msg, size_t size);
IMPORT(proxy_get_header_map_value)
uint32_t proxy_get_header_map_value(uint32_t map, const char *key, size_t key_size, char **value, size_t *value_size);
IMPORT(proxy_add_header_map_value)
uint32_t proxy_add_header_map_value(uint32_t map, const char *key, size_t key_size, const char *value, size_t value_size);
IMPORT(proxy_remove_header_map_value) uint32_t proxy_remove_header_map_value(uint32_t map, const char *key, size_t key_size);
IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t buffer, size_t start, size_t max_size, char **data, size_t *size);
IMPORT(proxy_set_buffer_bytes)
uint32_t proxy_set_buffer_bytes(uint32_t buffer, size_t start, size_t size, const char *data, size_t data_size);
IMPORT(proxy_define_metric) uint32_t proxy_define_metric(uint32_t type, const char *name, size_t size, uint32_t *id);
IMPORT(proxy_increment_metric) uint32_t proxy_increment_metric(uint32_t id, int64_t delta);

#define S(literal) literal, sizeof(literal) - 1

static uint32_t bodies_metric;
/* Per-context mode, by context id modulo the table size (contexts are short-lived). */
static uint8_t upper[1024];

EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }

EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context_id, uint32_t root_id) {
  upper[context_id % 1024] = 0;
}

EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root_id, uint32_t size) { return 1; }

EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root_id, uint32_t size) {
  char *config = NULL;
  size_t config_size = 0;
  proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, size, &config, &config_size);
  proxy_log(LOG_INFO, S("upper-body-c configured"));
  free(config);
  return proxy_define_metric(METRIC_COUNTER, S("c_plugin_bodies_total"), &bodies_metric) == 0;
}

EXPORT(proxy_on_request_headers) uint32_t proxy_on_request_headers(uint32_t context_id, uint32_t headers, uint32_t eos) {
  char *value = NULL;
  size_t size = 0;
  if (proxy_get_header_map_value(MAP_REQUEST_HEADERS, S("x-c"), &value, &size) == 0 && size == 5 &&
      memcmp(value, "upper", 5) == 0) {
    upper[context_id % 1024] = 1;
    proxy_add_header_map_value(MAP_REQUEST_HEADERS, S("x-c-seen"), S("1"));
  }
  free(value);
  return CONTINUE;
}

EXPORT(proxy_on_response_headers) uint32_t proxy_on_response_headers(uint32_t context_id, uint32_t headers, uint32_t eos) {
  proxy_add_header_map_value(MAP_RESPONSE_HEADERS, S("x-c-plugin"), S("c"));
  if (upper[context_id % 1024]) proxy_remove_header_map_value(MAP_RESPONSE_HEADERS, S("content-length"));
  return CONTINUE;
}

EXPORT(proxy_on_response_body) uint32_t proxy_on_response_body(uint32_t context_id, uint32_t body_size, uint32_t eos) {
  if (!upper[context_id % 1024]) return CONTINUE;
  if (!eos) return PAUSE; /* buffer until the whole body is here */
  char *body = NULL;
  size_t size = 0;
  if (proxy_get_buffer_bytes(BUFFER_RESPONSE_BODY, 0, body_size, &body, &size) != 0) return CONTINUE;
  for (size_t i = 0; i < size; i++)
    if (body[i] >= 'a' && body[i] <= 'z') body[i] -= 32;
  proxy_set_buffer_bytes(BUFFER_RESPONSE_BODY, 0, size, body, size);
  free(body);
  proxy_increment_metric(bodies_metric, 1);
  return CONTINUE;
}

EXPORT(proxy_on_done) uint32_t proxy_on_done(uint32_t context_id) { return 1; }
EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) {}
EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) {}
