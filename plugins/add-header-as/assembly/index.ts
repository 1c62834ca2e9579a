// add-header-as: a Proxy-Wasm plugin in AssemblyScript on @solo-io/proxy-runtime 0.1.8.
//
// - Root context: reads the plugin configuration (JSON text such as {"header":"x-as","value":"hello"};
//   defaults: header "x-as", value "assemblyscript") and logs "add_header configured: <header>=<value>".
// - HTTP context: a request carrying the header `x-as-deny` is answered locally with
//   403 "denied by assemblyscript" (StopIteration); every response gets `<header>: <value>`.
//
// The runtime picks the root context by the property `plugin_root_id` (the WasmPlugin's
// spec.pluginName), so the plugin must be configured with pluginName: add_header.

// The Proxy-Wasm entry points (proxy_on_*, proxy_abi_version_0_2_0, malloc, free).
export * from "@solo-io/proxy-runtime/proxy";

import {
  Context,
  FilterHeadersStatusValues,
  GrpcStatusValues,
  HeaderPair,
  LogLevelValues,
  RootContext,
  log,
  registerRootContext,
  send_local_response,
  stream_context,
} from "@solo-io/proxy-runtime";
// Not re-exported by the package's index, but part of the same module graph.
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";

const ROOT_ID = "add_header";
const DEFAULT_HEADER = "x-as";
const DEFAULT_VALUE = "assemblyscript";
const DENY_HEADER = "x-as-deny";
const DENY_BODY = "denied by assemblyscript";

/** Index just past the whitespace starting at `i`. */
function skipWs(s: string, i: i32): i32 {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
    i++;
  }
  return i;
}

/**
 * A tiny JSON lookup: the string value of the top-level-looking member `"key": "..."`,
 * or `fallback` when the key is missing or its value is not a string. Understands the
 * escapes \" \\ \/ \n \t \r (others are kept verbatim); good enough for a flat config object.
 */
function jsonString(json: string, key: string, fallback: string): string {
  const needle = "\"" + key + "\"";
  let from = 0;
  while (true) {
    const at = json.indexOf(needle, from);
    if (at < 0) return fallback;
    from = at + needle.length;
    let i = skipWs(json, from);
    if (i >= json.length || json.charCodeAt(i) != 0x3a /* : */) continue; // a value, not a key
    i = skipWs(json, i + 1);
    if (i >= json.length || json.charCodeAt(i) != 0x22 /* " */) return fallback;
    i++;
    let out = "";
    let start = i;
    while (i < json.length) {
      const c = json.charCodeAt(i);
      if (c == 0x22) return out + json.substring(start, i);
      if (c == 0x5c /* \ */ && i + 1 < json.length) {
        out += json.substring(start, i);
        const e = json.charCodeAt(i + 1);
        if (e == 0x6e) out += "\n";
        else if (e == 0x74) out += "\t";
        else if (e == 0x72) out += "\r";
        else if (e == 0x22 || e == 0x5c || e == 0x2f) out += String.fromCharCode(e);
        else out += json.substring(i, i + 2);
        i += 2;
        start = i;
        continue;
      }
      i++;
    }
    return fallback; // unterminated string
  }
  return fallback;
}

class AddHeaderRoot extends RootContext {
  header: string = DEFAULT_HEADER;
  value: string = DEFAULT_VALUE;

  constructor(context_id: u32) {
    super(context_id);
  }

  // RootContext.onConfigure in proxy-runtime 0.1.8 passes `configuration_size` where the ABI wants
  // the pointer for the returned size, so the host writes into guest memory at that address.
  // Read the plugin configuration with the runtime's correct get_buffer_bytes helper instead.
  onConfigure(configuration_size: u32): bool {
    let config = "";
    if (configuration_size > 0) {
      config = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size));
    }
    // Plain if/else on purpose: asc 0.14 does not retain a local picked by `c ? local : other`
    // before storing it in a field, so the string would be freed while still referenced.
    let header = jsonString(config, "header", DEFAULT_HEADER).trim().toLowerCase();
    if (header.length == 0) header = DEFAULT_HEADER;
    this.header = header;
    this.value = jsonString(config, "value", DEFAULT_VALUE);
    log(LogLevelValues.info, "add_header configured: " + this.header + "=" + this.value);
    return true;
  }

  createContext(context_id: u32): Context {
    return new AddHeader(context_id, this);
  }
}

class AddHeader extends Context {
  root: AddHeaderRoot;

  constructor(context_id: u32, root_context: AddHeaderRoot) {
    super(context_id, root_context);
    this.root = root_context;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    // Presence, not value: scan the pairs so that `x-as-deny:` with an empty value also counts.
    const pairs = stream_context.headers.request.get_headers();
    for (let i = 0; i < pairs.length; i++) {
      if (String.UTF8.decode(pairs[i].key).toLowerCase() == DENY_HEADER) {
        const extra: HeaderPair[] = [
          new HeaderPair(String.UTF8.encode("content-type"), String.UTF8.encode("text/plain")),
        ];
        send_local_response(403, "denied_by_assemblyscript", String.UTF8.encode(DENY_BODY), extra, GrpcStatusValues.InvalidCode);
        return FilterHeadersStatusValues.StopIteration;
      }
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add(this.root.header, this.root.value);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => new AddHeaderRoot(context_id), ROOT_ID);
