// A NETWORK (L4) plugin on the Go 1.24+ proxy-wasm-go-sdk, adapted from the SDK's
// examples/network (Copyright 2020-2024 Tetrate, Apache-2.0): it logs every connection's
// lifecycle, counts the bytes each way and logs the totals when the connection is done, e.g.
//
//	connection 2 done: downstream 11 bytes in 1 chunks, upstream 11 bytes in 1 chunks
//
// It also counts connections in the metric proxy_wasm_go.connection_counter, as the example does,
// and the bytes in proxy_wasm_go.downstream_bytes / proxy_wasm_go.upstream_bytes.
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
	return &pluginContext{
		connections: proxywasm.DefineCounterMetric("proxy_wasm_go.connection_counter"),
		downBytes:   proxywasm.DefineCounterMetric("proxy_wasm_go.downstream_bytes"),
		upBytes:     proxywasm.DefineCounterMetric("proxy_wasm_go.upstream_bytes"),
	}
}

type pluginContext struct {
	types.DefaultPluginContext
	connections proxywasm.MetricCounter
	downBytes   proxywasm.MetricCounter
	upBytes     proxywasm.MetricCounter
}

func (p *pluginContext) NewTcpContext(contextID uint32) types.TcpContext {
	return &networkContext{plugin: p, contextID: contextID}
}

type networkContext struct {
	types.DefaultTcpContext
	plugin     *pluginContext
	contextID  uint32
	down, up   int
	downChunks int
	upChunks   int
}

func (ctx *networkContext) OnNewConnection() types.Action {
	src, _ := proxywasm.GetProperty([]string{"source", "address"})
	dst, _ := proxywasm.GetProperty([]string{"destination", "address"})
	proxywasm.LogInfof("connection %d: new connection from %s to %s", ctx.contextID, string(src), string(dst))
	return types.ActionContinue
}

func (ctx *networkContext) OnDownstreamData(dataSize int, endOfStream bool) types.Action {
	if dataSize == 0 {
		return types.ActionContinue
	}
	data, err := proxywasm.GetDownstreamData(0, dataSize)
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCriticalf("failed to get downstream data: %v", err)
		return types.ActionContinue
	}
	ctx.down += len(data)
	ctx.downChunks++
	proxywasm.LogDebugf("connection %d: >>>>>> downstream data received (%d bytes) >>>>>>\n%s", ctx.contextID, len(data), string(data))
	return types.ActionContinue
}

func (ctx *networkContext) OnDownstreamClose(peer types.PeerType) {
	proxywasm.LogInfof("connection %d: downstream connection close (peer %d)", ctx.contextID, peer)
}

func (ctx *networkContext) OnUpstreamData(dataSize int, endOfStream bool) types.Action {
	if dataSize == 0 {
		return types.ActionContinue
	}
	address, err := proxywasm.GetProperty([]string{"upstream", "address"})
	if err != nil {
		proxywasm.LogWarnf("failed to get upstream remote address: %v", err)
	}
	data, err := proxywasm.GetUpstreamData(0, dataSize)
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCritical(err.Error())
	}
	ctx.up += len(data)
	ctx.upChunks++
	proxywasm.LogDebugf("connection %d: <<<<<< upstream data received from %s (%d bytes) <<<<<<\n%s", ctx.contextID, string(address), len(data), string(data))
	return types.ActionContinue
}

func (ctx *networkContext) OnUpstreamClose(peer types.PeerType) {
	proxywasm.LogInfof("connection %d: upstream connection close (peer %d)", ctx.contextID, peer)
}

func (ctx *networkContext) OnStreamDone() {
	ctx.plugin.connections.Increment(1)
	ctx.plugin.downBytes.Increment(uint64(ctx.down))
	ctx.plugin.upBytes.Increment(uint64(ctx.up))
	proxywasm.LogInfof("connection %d done: downstream %d bytes in %d chunks, upstream %d bytes in %d chunks",
		ctx.contextID, ctx.down, ctx.downChunks, ctx.up, ctx.upChunks)
}
