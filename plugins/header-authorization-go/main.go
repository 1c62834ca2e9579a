// The header-authorization plugin of Alibaba Service Mesh's Go tutorial, on the Go 1.24+
// proxy-wasm-go-sdk: requests without `allow: true` get 403 "Forbidden by ASM Wasm Plugin".
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func main() {}

// With -buildmode=c-shared, main() does not run: the VM context is registered in init().
func init() {
	proxywasm.SetVMContext(&vmContext{})
}

type vmContext struct {
	types.DefaultVMContext
}

func (*vmContext) NewPluginContext(contextID uint32) types.PluginContext {
	return &pluginContext{}
}

type pluginContext struct {
	types.DefaultPluginContext
}

func (*pluginContext) NewHttpContext(contextID uint32) types.HttpContext {
	return &httpContext{contextID: contextID}
}

type httpContext struct {
	types.DefaultHttpContext
	contextID uint32
}

func (ctx *httpContext) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	allow, _ := proxywasm.GetHttpRequestHeader("allow")
	if allow == "true" {
		return types.ActionContinue
	}
	proxywasm.LogDebugf("request header: 'allow' is %s, only true can passthrough", allow)
	if err := proxywasm.SendHttpResponse(403, nil, []byte("Forbidden by ASM Wasm Plugin"), -1); err != nil {
		proxywasm.LogErrorf("failed to send local response: %v", err)
	}
	return types.ActionPause
}
