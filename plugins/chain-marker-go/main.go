// chain-marker: proves where a plugin runs in the filter chain. On request headers it appends its
// own plugin_name (`<namespace>.<name>`) to `x-chain` (comma-separated) and sets the request
// headers listed in its configuration; on response headers it appends its name to
// `x-chain-response`. With `"requireHeader": "NAME"` it answers 412 when NAME is absent, so a test
// can see which headers an earlier filter left on the request.
//
// pluginConfig (all optional):
//
//	{"set": {"authorization": "Bearer ..."}, "requireHeader": "x-user"}
package main

import (
	"encoding/json"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

func init() {
	proxywasm.SetVMContext(&vmContext{})
}

type vmContext struct {
	types.DefaultVMContext
}

func (*vmContext) NewPluginContext(contextID uint32) types.PluginContext {
	return &pluginContext{}
}

type config struct {
	Set           map[string]string `json:"set"`
	RequireHeader string            `json:"requireHeader"`
}

type pluginContext struct {
	types.DefaultPluginContext
	name string
	cfg  config
}

func (p *pluginContext) OnPluginStart(size int) types.OnPluginStartStatus {
	name, err := proxywasm.GetProperty([]string{"plugin_name"})
	if err != nil {
		proxywasm.LogCriticalf("plugin_name: %v", err)
		return types.OnPluginStartStatusFailed
	}
	p.name = string(name)
	if size > 0 {
		data, err := proxywasm.GetPluginConfiguration()
		if err != nil {
			proxywasm.LogCriticalf("configuration: %v", err)
			return types.OnPluginStartStatusFailed
		}
		if err := json.Unmarshal(data, &p.cfg); err != nil {
			proxywasm.LogCriticalf("configuration is not valid JSON: %v", err)
			return types.OnPluginStartStatusFailed
		}
	}
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(contextID uint32) types.HttpContext {
	return &httpContext{plugin: p}
}

type httpContext struct {
	types.DefaultHttpContext
	plugin *pluginContext
}

func appendTo(get func(string) (string, error), set func(string, string) error, header, name string) {
	cur, err := get(header)
	if err == nil && cur != "" {
		name = cur + "," + name
	}
	if err := set(header, name); err != nil {
		proxywasm.LogErrorf("set %s: %v", header, err)
	}
}

func (ctx *httpContext) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	p := ctx.plugin
	if p.cfg.RequireHeader != "" {
		if v, err := proxywasm.GetHttpRequestHeader(p.cfg.RequireHeader); err != nil || v == "" {
			proxywasm.LogInfof("%s: missing request header %s", p.name, p.cfg.RequireHeader)
			_ = proxywasm.SendHttpResponse(412, nil, []byte(p.name+": missing "+p.cfg.RequireHeader), -1)
			return types.ActionPause
		}
	}
	appendTo(proxywasm.GetHttpRequestHeader, proxywasm.ReplaceHttpRequestHeader, "x-chain", p.name)
	for k, v := range p.cfg.Set {
		if err := proxywasm.ReplaceHttpRequestHeader(k, v); err != nil {
			proxywasm.LogErrorf("set %s: %v", k, err)
		}
	}
	return types.ActionContinue
}

func (ctx *httpContext) OnHttpResponseHeaders(numHeaders int, endOfStream bool) types.Action {
	appendTo(proxywasm.GetHttpResponseHeader, proxywasm.ReplaceHttpResponseHeader, "x-chain-response", ctx.plugin.name)
	return types.ActionContinue
}
