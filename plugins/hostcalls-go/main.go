// hostcalls-go: a proxy-wasm-go-sdk plugin (Go 1.24+) that exercises bodies, callouts, shared
// data, shared queues and timers, steered by the request header `x-go`. See README.md.
package main

import (
	"encoding/hex"
	"strconv"
	"strings"

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

type pluginContext struct {
	types.DefaultPluginContext
	cluster string
	queueID uint32
}

// Configuration is a small flat JSON object: {"cluster": "...", "tick_ms": N}.
func field(config, name string) string {
	key := `"` + name + `"`
	i := strings.Index(config, key)
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(config[i+len(key):], " :")
	if strings.HasPrefix(rest, `"`) {
		end := strings.Index(rest[1:], `"`)
		if end < 0 {
			return ""
		}
		return rest[1 : 1+end]
	}
	end := strings.IndexAny(rest, ",} ")
	if end < 0 {
		return rest
	}
	return rest[:end]
}

func (p *pluginContext) OnPluginStart(size int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCriticalf("cannot read configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	config := string(data)
	p.cluster = field(config, "cluster")
	if ms, err := strconv.Atoi(field(config, "tick_ms")); err == nil && ms > 0 {
		if err := proxywasm.SetTickPeriodMilliSeconds(uint32(ms)); err != nil {
			proxywasm.LogErrorf("set tick period: %v", err)
		}
	}
	id, err := proxywasm.RegisterSharedQueue("go-queue")
	if err != nil {
		proxywasm.LogErrorf("register queue: %v", err)
		return types.OnPluginStartStatusFailed
	}
	p.queueID = id
	proxywasm.LogInfof("hostcalls-go configured: cluster=%s", p.cluster)
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) OnTick() {
	for {
		value, cas, err := proxywasm.GetSharedData("go-ticks")
		n := 0
		if err == nil {
			n, _ = strconv.Atoi(string(value))
		}
		if err := proxywasm.SetSharedData("go-ticks", []byte(strconv.Itoa(n+1)), cas); err == nil {
			return
		} else if err != types.ErrorStatusCasMismatch {
			proxywasm.LogErrorf("set go-ticks: %v", err)
			return
		}
	}
}

func (p *pluginContext) OnQueueReady(queueID uint32) {
	for {
		item, err := proxywasm.DequeueSharedQueue(queueID)
		if err != nil {
			return
		}
		proxywasm.LogInfof("go queue item: %s", string(item))
	}
}

func (p *pluginContext) NewHttpContext(contextID uint32) types.HttpContext {
	return &httpContext{contextID: contextID, cluster: p.cluster}
}

type httpContext struct {
	types.DefaultHttpContext
	contextID uint32
	cluster   string
	mode      string
}

func (ctx *httpContext) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	ctx.mode, _ = proxywasm.GetHttpRequestHeader("x-go")
	switch ctx.mode {
	case "body":
		_ = proxywasm.RemoveHttpRequestHeader("content-length")
	case "callout":
		path, _ := proxywasm.GetHttpRequestHeader("x-path")
		if path == "" {
			path = "/get"
		}
		headers := [][2]string{{":method", "GET"}, {":path", path}, {":authority", "callout.local"}}
		_, err := proxywasm.DispatchHttpCall(ctx.cluster, headers, nil, nil, 5000, func(numHeaders, bodySize, numTrailers int) {
			if numHeaders == 0 {
				_ = proxywasm.SendHttpResponse(502, nil, []byte("go callout failed"), -1)
				return
			}
			status := ""
			if headers, err := proxywasm.GetHttpCallResponseHeaders(); err == nil {
				for _, h := range headers {
					if h[0] == ":status" {
						status = h[1]
					}
				}
			}
			_ = proxywasm.AddHttpRequestHeader("x-go-callout-status", status)
			_ = proxywasm.AddHttpRequestHeader("x-go-callout-bytes", strconv.Itoa(bodySize))
			_ = proxywasm.ResumeHttpRequest()
		})
		if err != nil {
			_ = proxywasm.SendHttpResponse(500, nil, []byte("dispatch failed: "+err.Error()), -1)
		}
		return types.ActionPause
	case "enqueue":
		value, _ := proxywasm.GetHttpRequestHeader("x-val")
		id, err := proxywasm.ResolveSharedQueue("", "go-queue")
		if err == nil {
			err = proxywasm.EnqueueSharedQueue(id, []byte(value))
		}
		if err != nil {
			_ = proxywasm.SendHttpResponse(500, nil, []byte(err.Error()), -1)
		} else {
			_ = proxywasm.SendHttpResponse(200, nil, []byte("enqueued"), -1)
		}
		return types.ActionPause
	case "ticks":
		value, _, err := proxywasm.GetSharedData("go-ticks")
		if err != nil {
			value = []byte("0")
		}
		_ = proxywasm.SendHttpResponse(200, [][2]string{{"content-type", "text/plain"}}, value, -1)
		return types.ActionPause
	}
	return types.ActionContinue
}

func (ctx *httpContext) OnHttpRequestBody(bodySize int, endOfStream bool) types.Action {
	if ctx.mode != "body" {
		return types.ActionContinue
	}
	if !endOfStream {
		return types.ActionPause
	}
	body, err := proxywasm.GetHttpRequestBody(0, bodySize)
	if err != nil {
		proxywasm.LogErrorf("get body: %v", err)
		return types.ActionContinue
	}
	if err := proxywasm.ReplaceHttpRequestBody(append([]byte("go:"), body...)); err != nil {
		proxywasm.LogErrorf("replace body: %v", err)
	}
	return types.ActionContinue
}

func (ctx *httpContext) OnHttpResponseHeaders(numHeaders int, endOfStream bool) types.Action {
	_ = proxywasm.AddHttpResponseHeader("x-go-plugin", strconv.Itoa(int(ctx.contextID)))
	if ctx.mode == "props" {
		// x-go: props with x-props: a,b.c,... — each property path (dot-separated) read in the
		// response phase and returned hex-encoded in x-prop-<path>, or "-" when NotFound.
		paths, _ := proxywasm.GetHttpRequestHeader("x-props")
		for _, path := range strings.Split(paths, ",") {
			path = strings.TrimSpace(path)
			if path == "" {
				continue
			}
			value, err := proxywasm.GetProperty(strings.Split(path, "."))
			out := "-"
			if err == nil {
				out = hex.EncodeToString(value)
			}
			_ = proxywasm.AddHttpResponseHeader("x-prop-"+path, out)
		}
	}
	return types.ActionContinue
}
